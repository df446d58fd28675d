package ydoc

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/caddy-wiredb/wiredb/internal/ysafe"
	"github.com/caddy-wiredb/wiredb/yproto"
)

// ErrIncomplete is returned (wrapped) by ToJSON for an update that depends on content it
// does not carry (it starts after a clock 0, or deletes what it does not hold): Yjs and
// y-crdt keep such content pending, so what renders is not the whole document.
var ErrIncomplete = errors.New("ydoc: update is incomplete")

// The root type names of the output.
const (
	TypeText        = "Text"
	TypeMap         = "Map"
	TypeArray       = "Array"
	TypeXmlFragment = "XmlFragment"
	TypeEmpty       = "Empty"
)

// Document is the rendered content of an update.
type Document struct {
	// Roots are the root types by name.
	Roots map[string]Root
	// StateVector is the next clock of every client the document has structs of.
	StateVector map[uint64]uint64
	// Incomplete reports that the update depends on structs or deletes it does not carry;
	// Roots then lacks what depends on them.
	Incomplete bool
}

// Root is one rendered root type. Value, Delta and Children hold JSON-ready values: nil,
// bool, float64, json.Number, string, []any and map[string]any.
type Root struct {
	// Type is TypeText, TypeMap, TypeArray, TypeXmlFragment or TypeEmpty.
	Type string
	// Value is what Yjs' toJSON() of the root returns.
	Value any
	// Delta is a Text's delta, when it has formatting or embeds.
	Delta []any
	// Children is an XmlFragment's tree.
	Children []any
}

// MarshalJSON writes the root as {"type", "value", "delta"?, "children" (XmlFragment)}.
func (r Root) MarshalJSON() ([]byte, error) {
	switch {
	case r.Type == TypeXmlFragment:
		children := r.Children
		if children == nil {
			children = []any{}
		}
		return marshal(struct {
			Type     string `json:"type"`
			Value    any    `json:"value"`
			Children []any  `json:"children"`
		}{r.Type, r.Value, children})
	case r.Delta != nil:
		return marshal(struct {
			Type  string `json:"type"`
			Value any    `json:"value"`
			Delta []any  `json:"delta"`
		}{r.Type, r.Value, r.Delta})
	}
	return marshal(struct {
		Type  string `json:"type"`
		Value any    `json:"value"`
	}{r.Type, r.Value})
}

// JSON returns the document's roots as one JSON object (keys sorted), without HTML
// escaping, so XML renders readably.
func (d *Document) JSON() (json.RawMessage, error) {
	roots := d.Roots
	if roots == nil {
		roots = map[string]Root{}
	}
	return marshal(roots)
}

func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// ToJSON validates a Yjs v1 update and renders the document it holds as JSON, in the shape
// the package documentation describes. It fails for an invalid update, an incomplete one
// (ErrIncomplete), and when y-crdt panics.
func ToJSON(update []byte) (json.RawMessage, error) {
	d, err := Render(update)
	if err != nil {
		return nil, err
	}
	if d.Incomplete {
		return nil, ErrIncomplete
	}
	return d.JSON()
}

// Render validates a Yjs v1 update and renders the document it holds. An incomplete update
// renders what it can, with Incomplete set.
func Render(update []byte) (*Document, error) {
	return RenderAll([][]byte{update})
}

// RenderAll validates Yjs v1 updates and renders the document they make when applied in
// order to one document (in one transaction: see ysafe.LoadAll). It takes another path
// through y-crdt than merging the updates and rendering the result, which makes it a check
// of a merge: both must render alike.
func RenderAll(updates [][]byte) (*Document, error) {
	for i, u := range updates {
		if _, err := yproto.ValidateUpdate(u, yproto.Limits{}); err != nil {
			if len(updates) == 1 {
				return nil, fmt.Errorf("invalid update: %w", err)
			}
			return nil, fmt.Errorf("invalid update %d: %w", i, err)
		}
	}
	snap, err := ysafe.LoadAll(updates)
	if err != nil {
		return nil, err
	}
	d := &Document{
		Roots:       make(map[string]Root, len(snap.Roots)),
		StateVector: snap.StateVector,
		Incomplete:  snap.Incomplete,
	}
	for name, t := range snap.Roots {
		d.Roots[name] = renderRoot(t)
	}
	return d, nil
}

// InferKind tells which kind of type a root is from its content (see the package
// documentation): TypeText, TypeMap, TypeArray, TypeXmlFragment or TypeEmpty.
func inferKind(t *ysafe.Type) string {
	c := t.Content
	switch {
	case c&(ysafe.HasString|ysafe.HasFormat|ysafe.HasEmbed) != 0:
		return TypeText
	case c&ysafe.HasXMLNode != 0:
		return TypeXmlFragment
	case c&(ysafe.HasType|ysafe.HasValue) != 0:
		return TypeArray
	case c&ysafe.HasKeyed != 0:
		return TypeMap
	}
	return TypeEmpty
}

func renderRoot(t *ysafe.Type) Root {
	switch kind := inferKind(t); kind {
	case TypeText:
		r := Root{Type: kind, Value: textString(t)}
		if delta, rich := textDelta(t); rich {
			r.Delta = delta
		}
		return r
	case TypeXmlFragment:
		return Root{Type: kind, Value: xmlString(t), Children: xmlChildren(t)}
	case TypeArray:
		return Root{Type: kind, Value: arrayJSON(t)}
	case TypeMap:
		return Root{Type: kind, Value: mapJSON(t)}
	default:
		return Root{Type: TypeEmpty}
	}
}

// typeJSON renders a shared type as its Yjs toJSON() does (a Text as its string, XML types
// as their XML string).
func typeJSON(t *ysafe.Type) any {
	switch t.Kind {
	case ysafe.KindMap, ysafe.KindXmlHook:
		return mapJSON(t)
	case ysafe.KindArray:
		return arrayJSON(t)
	case ysafe.KindText:
		return textString(t)
	case ysafe.KindXmlText, ysafe.KindXmlElement, ysafe.KindXmlFragment:
		return xmlString(t)
	}
	return renderRoot(t).Value
}

func mapJSON(t *ysafe.Type) map[string]any {
	out := make(map[string]any, len(t.Entries))
	for k, v := range t.Entries {
		if v == ysafe.Undefined {
			continue // JSON.stringify leaves out undefined members
		}
		out[k] = jsonValue(v)
	}
	return out
}

// arrayJSON renders a sequence's countable content as YArray.toJSON does.
func arrayJSON(t *ysafe.Type) []any {
	out := []any{}
	for _, p := range t.Pieces {
		switch {
		case p.Format != nil:
		case p.Values == nil:
			for _, r := range p.Text {
				out = append(out, string(r))
			}
		default:
			for _, v := range p.Values {
				out = append(out, jsonValue(v))
			}
		}
	}
	return out
}

// textString is YText.toString: the strings, without embeds or formatting.
func textString(t *ysafe.Type) string {
	var b bytes.Buffer
	for _, p := range t.Pieces {
		if p.Format == nil && p.Values == nil {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

// deltaOp is one op of a text delta before rendering.
type deltaOp struct {
	insert any // string, or an embed or nested type value (ysafe values)
	attrs  map[string]any
}

// textOps computes a text's delta as YText.toDelta does: runs of strings under the same
// attributes, and one op per embed or embedded type.
func textOps(t *ysafe.Type) []deltaOp {
	var ops []deltaOp
	current := map[string]any{}
	var str bytes.Buffer
	attrs := func() map[string]any {
		if len(current) == 0 {
			return nil
		}
		a := make(map[string]any, len(current))
		for k, v := range current {
			a[k] = v
		}
		return a
	}
	pack := func() {
		if str.Len() > 0 {
			ops = append(ops, deltaOp{insert: str.String(), attrs: attrs()})
			str.Reset()
		}
	}
	for _, p := range t.Pieces {
		switch {
		case p.Format != nil:
			pack()
			if p.Format.Value == nil {
				delete(current, p.Format.Key)
			} else {
				current[p.Format.Key] = p.Format.Value
			}
		case p.Values == nil:
			str.WriteString(p.Text)
		case p.Embed:
			pack()
			ops = append(ops, deltaOp{insert: p.Values[0], attrs: attrs()})
		default:
			// Yjs' toDelta shows embedded types; other content (Any, binary) it skips.
			for _, v := range p.Values {
				if _, ok := v.(*ysafe.Type); ok {
					pack()
					ops = append(ops, deltaOp{insert: v, attrs: attrs()})
				}
			}
		}
	}
	pack()
	return ops
}

// textDelta renders a text's delta, and reports whether it holds more than its string.
func textDelta(t *ysafe.Type) (delta []any, rich bool) {
	delta = []any{}
	for _, op := range textOps(t) {
		o := deltaJSON{Insert: jsonValue(op.insert)}
		if _, isString := op.insert.(string); !isString {
			rich = true
		}
		if op.attrs != nil {
			o.Attributes = jsonValue(op.attrs).(map[string]any)
			rich = true
		}
		delta = append(delta, o)
	}
	return delta, rich
}

// deltaJSON is one op of a rendered delta, as Yjs writes it.
type deltaJSON struct {
	Insert     any            `json:"insert"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

// jsonValue turns a ysafe value into a JSON-ready value, as JSON.stringify would write it
// (see the package documentation for binary, bigint and subdocuments).
func jsonValue(v any) any {
	switch v := v.(type) {
	case nil, bool, string:
		return v
	case ysafe.UndefinedValue:
		return nil // in arrays; objects leave the member out
	case float64:
		switch {
		case math.IsNaN(v) || math.IsInf(v, 0):
			return nil
		case v == 0:
			return float64(0) // -0 too, as JSON.stringify
		}
		return v
	case ysafe.BigInt:
		return json.Number(strconv.FormatInt(int64(v), 10))
	case []byte:
		return base64.StdEncoding.EncodeToString(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = jsonValue(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			if e == ysafe.Undefined {
				continue
			}
			out[k] = jsonValue(e)
		}
		return out
	case *ysafe.Type:
		return typeJSON(v)
	case ysafe.Subdoc:
		return map[string]any{"guid": v.GUID}
	}
	return nil
}
