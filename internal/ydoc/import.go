package ydoc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/caddy-wiredb/wiredb/internal/ysafe"
	"github.com/caddy-wiredb/wiredb/yproto"
)

// ErrBadJSON is returned (wrapped) by FromJSON for input that is not in the shape Render
// produces, or that contradicts itself (a Text whose value is not its delta's text).
var ErrBadJSON = errors.New("ydoc: not a document in ydoc's JSON shape")

// ErrMismatch is returned (wrapped) by FromJSON when the document it built does not render
// as the input: y-crdt built something else than what it was given.
var ErrMismatch = errors.New("ydoc: built document differs from its JSON")

// Imported is what FromJSON built.
type Imported struct {
	// Update is the document as one v1 update.
	Update []byte
	// Skipped names the roots that were left out because they are empty (no update can
	// carry an empty root: Yjs only learns of a root from its content) or Empty.
	Skipped []string
}

// FromJSON builds a document from JSON in the shape Render produces and returns it as one
// v1 update, built in a fresh y-crdt Doc (through ysafe, under recover).
//
// A Text is built from its "delta" when present (strings and embeds with their
// attributes), else from its "value"; a Map from its "value" object; an Array from its
// "value" array; an XmlFragment from its "children" tree (XmlElement, XmlText, XmlHook).
// Values become plain JSON values: what rendered from nested shared types (a nested Y.Map
// as an object, a nested Y.Text as a string) comes back as JSON values, not as types, and
// binary (rendered as base64) comes back as a string.
//
// Before it returns, FromJSON validates the update with yproto, renders it, and checks that
// it renders as the input does (ErrMismatch otherwise).
func FromJSON(data []byte) (*Imported, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var in map[string]json.RawMessage
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadJSON, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the document", ErrBadJSON)
	}
	if in == nil {
		return nil, fmt.Errorf("%w: not an object of root types", ErrBadJSON)
	}
	roots := make(map[string]ysafe.Root, len(in))
	res := &Imported{}
	for _, name := range sortedKeys(in) {
		r, err := parseRoot(in[name])
		if err != nil {
			return nil, fmt.Errorf("%w: root %q: %w", ErrBadJSON, name, err)
		}
		if r == nil {
			res.Skipped = append(res.Skipped, name)
			continue
		}
		roots[name] = *r
	}
	for name, r := range roots {
		if err := checkDepth(r); err != nil {
			return nil, fmt.Errorf("%w: root %q: %w", ErrBadJSON, name, err)
		}
	}
	update, err := ysafe.Build(roots)
	if err != nil {
		return nil, err
	}
	if _, err := yproto.ValidateUpdate(update, yproto.Limits{}); err != nil {
		return nil, fmt.Errorf("%w: y-crdt wrote an invalid update: %w", ErrMismatch, err)
	}
	rendered, err := ToJSON(update)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMismatch, err)
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal(rendered, &out); err != nil {
		return nil, err
	}
	if len(out) != len(roots) {
		return nil, fmt.Errorf("%w: %d roots built, %d rendered", ErrMismatch, len(roots), len(out))
	}
	for name, want := range roots {
		got, err := parseRoot(out[name])
		if err != nil || got == nil {
			return nil, fmt.Errorf("%w: root %q renders as %s", ErrMismatch, name, out[name])
		}
		if !reflect.DeepEqual(canonical(*got), canonical(want)) {
			return nil, fmt.Errorf("%w: root %q renders as %s", ErrMismatch, name, out[name])
		}
	}
	res.Update = update
	return res, nil
}

// rootJSON is a root as Render writes it.
type rootJSON struct {
	Type     string            `json:"type"`
	Value    json.RawMessage   `json:"value"`
	Delta    []json.RawMessage `json:"delta"`
	Children []json.RawMessage `json:"children"`
}

// parseRoot reads one root. It returns nil for a root that cannot be stored: Empty, or
// without content.
func parseRoot(data json.RawMessage) (*ysafe.Root, error) {
	var rj rootJSON
	if err := strictUnmarshal(data, &rj); err != nil {
		return nil, err
	}
	switch rj.Type {
	case TypeText:
		var value *string
		if rj.Value != nil && string(rj.Value) != "null" {
			if err := json.Unmarshal(rj.Value, &value); err != nil {
				return nil, fmt.Errorf("Text value: %w", err)
			}
		}
		var delta []ysafe.TextOp
		if rj.Delta != nil {
			var err error
			if delta, err = parseDelta(rj.Delta); err != nil {
				return nil, err
			}
			if value != nil && *value != deltaText(delta) {
				return nil, errors.New("Text value is not the text of its delta")
			}
		} else if value != nil && *value != "" {
			delta = []ysafe.TextOp{{Insert: *value}}
		}
		delta = canonicalDelta(delta)
		if len(delta) == 0 {
			return nil, nil
		}
		return &ysafe.Root{Kind: ysafe.KindText, Delta: delta}, nil
	case TypeMap:
		var m map[string]any
		if err := json.Unmarshal(rj.Value, &m); err != nil || m == nil {
			return nil, fmt.Errorf("Map value is not an object")
		}
		if len(m) == 0 {
			return nil, nil
		}
		return &ysafe.Root{Kind: ysafe.KindMap, Entries: m}, nil
	case TypeArray:
		var a []any
		if err := json.Unmarshal(rj.Value, &a); err != nil || a == nil {
			return nil, fmt.Errorf("Array value is not an array")
		}
		if len(a) == 0 {
			return nil, nil
		}
		return &ysafe.Root{Kind: ysafe.KindArray, Values: a}, nil
	case TypeXmlFragment:
		if rj.Children == nil {
			return nil, errors.New(`XmlFragment without "children" (import reads the tree, not the XML string)`)
		}
		children, err := parseXMLChildren(rj.Children, 2)
		if err != nil {
			return nil, err
		}
		if len(children) == 0 {
			return nil, nil
		}
		r := &ysafe.Root{Kind: ysafe.KindXmlFragment, Children: children}
		if rj.Value != nil && string(rj.Value) != "null" {
			var s string
			if err := json.Unmarshal(rj.Value, &s); err != nil {
				return nil, errors.New("XmlFragment value is not a string")
			}
			if want := xmlOf(children); s != want {
				return nil, fmt.Errorf("XmlFragment value %q is not the XML of its children (%q)", s, want)
			}
		}
		return r, nil
	case TypeEmpty:
		return nil, nil
	case "":
		return nil, errors.New(`no "type"`)
	}
	return nil, fmt.Errorf("unknown type %q", rj.Type)
}

// maxValueDepth is how deeply a value (a map entry, an array element, an attribute, an
// embed) may nest arrays and objects: yproto's default limit, which the update must pass.
const maxValueDepth = 128

// checkDepth fails if a value of r nests deeper than maxValueDepth.
func checkDepth(r ysafe.Root) error {
	var vals []any
	for _, v := range r.Entries {
		vals = append(vals, v)
	}
	vals = append(vals, r.Values...)
	vals = append(vals, deltaValues(r.Delta)...)
	var walk func([]ysafe.XMLNode)
	walk = func(nodes []ysafe.XMLNode) {
		for _, n := range nodes {
			for _, v := range n.Attributes {
				vals = append(vals, v)
			}
			vals = append(vals, deltaValues(n.Delta)...)
			walk(n.Children)
		}
	}
	walk(r.Children)
	for _, v := range vals {
		if valueDepth(v) > maxValueDepth {
			return fmt.Errorf("a value nests deeper than %d", maxValueDepth)
		}
	}
	return nil
}

func deltaValues(ops []ysafe.TextOp) []any {
	var vals []any
	for _, op := range ops {
		vals = append(vals, op.Insert)
		for _, v := range op.Attributes {
			vals = append(vals, v)
		}
	}
	return vals
}

// valueDepth is how deeply v nests arrays and objects (encoding/json bounds it at 10000).
func valueDepth(v any) int {
	d := 0
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			d = max(d, valueDepth(e))
		}
		return d + 1
	case map[string]any:
		for _, e := range v {
			d = max(d, valueDepth(e))
		}
		return d + 1
	}
	return 0
}

// strictUnmarshal decodes into a struct, refusing unknown members.
func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func parseDelta(raw []json.RawMessage) ([]ysafe.TextOp, error) {
	ops := make([]ysafe.TextOp, 0, len(raw))
	for i, r := range raw {
		var op struct {
			Insert     any            `json:"insert"`
			Attributes map[string]any `json:"attributes"`
		}
		if err := strictUnmarshal(r, &op); err != nil {
			return nil, fmt.Errorf("delta op %d: %w", i, err)
		}
		switch op.Insert.(type) {
		case string, map[string]any:
		default:
			return nil, fmt.Errorf("delta op %d: insert is not a string or an object", i)
		}
		ops = append(ops, ysafe.TextOp{Insert: op.Insert, Attributes: op.Attributes})
	}
	return ops, nil
}

func deltaText(ops []ysafe.TextOp) string {
	var b bytes.Buffer
	for _, op := range ops {
		if s, ok := op.Insert.(string); ok {
			b.WriteString(s)
		}
	}
	return b.String()
}

// parseXMLChildren reads the children of a type at the given depth (the root is 1).
func parseXMLChildren(raw []json.RawMessage, depth int) ([]ysafe.XMLNode, error) {
	if depth > ysafe.MaxTypeDepth && len(raw) > 0 {
		return nil, fmt.Errorf("XML nests deeper than %d levels", ysafe.MaxTypeDepth)
	}
	nodes := make([]ysafe.XMLNode, 0, len(raw))
	for i, r := range raw {
		var nj struct {
			Type       string            `json:"type"`
			NodeName   string            `json:"nodeName"`
			HookName   string            `json:"hookName"`
			Attributes map[string]any    `json:"attributes"`
			Children   []json.RawMessage `json:"children"`
			Delta      []json.RawMessage `json:"delta"`
			Value      map[string]any    `json:"value"`
		}
		if err := strictUnmarshal(r, &nj); err != nil {
			return nil, fmt.Errorf("XML child %d: %w", i, err)
		}
		switch nj.Type {
		case "XmlElement":
			if nj.NodeName == "" {
				return nil, fmt.Errorf("XML child %d: XmlElement without nodeName", i)
			}
			children, err := parseXMLChildren(nj.Children, depth+1)
			if err != nil {
				return nil, err
			}
			nodes = append(nodes, ysafe.XMLNode{Kind: ysafe.KindXmlElement, Name: nj.NodeName, Attributes: nj.Attributes, Children: children})
		case "XmlText":
			delta, err := parseDelta(nj.Delta)
			if err != nil {
				return nil, fmt.Errorf("XML child %d: %w", i, err)
			}
			nodes = append(nodes, ysafe.XMLNode{Kind: ysafe.KindXmlText, Delta: canonicalDelta(delta)})
		case "XmlHook":
			if nj.HookName == "" {
				return nil, fmt.Errorf("XML child %d: XmlHook without hookName", i)
			}
			nodes = append(nodes, ysafe.XMLNode{Kind: ysafe.KindXmlHook, Name: nj.HookName, Attributes: nj.Value})
		default:
			return nil, fmt.Errorf("XML child %d: unsupported type %q", i, nj.Type)
		}
	}
	return nodes, nil
}

// xmlOf renders XML nodes as Yjs' toString() would.
func xmlOf(nodes []ysafe.XMLNode) string {
	return xmlString(xmlType(ysafe.KindXmlFragment, "", nil, nodes, nil))
}

// xmlType turns parsed XML nodes back into the ysafe.Type they describe, to render them.
func xmlType(kind ysafe.Kind, name string, attrs map[string]any, children []ysafe.XMLNode, delta []ysafe.TextOp) *ysafe.Type {
	t := &ysafe.Type{Kind: kind, Name: name, Entries: attrs}
	if kind == ysafe.KindXmlText {
		current := map[string]any{}
		for _, op := range delta {
			for k := range current {
				if _, ok := op.Attributes[k]; !ok {
					t.Pieces = append(t.Pieces, ysafe.Piece{Format: &ysafe.Format{Key: k}})
					delete(current, k)
				}
			}
			for k, v := range op.Attributes {
				t.Pieces = append(t.Pieces, ysafe.Piece{Format: &ysafe.Format{Key: k, Value: v}})
				current[k] = v
			}
			if s, ok := op.Insert.(string); ok {
				t.Pieces = append(t.Pieces, ysafe.Piece{Text: s})
			} else {
				t.Pieces = append(t.Pieces, ysafe.Piece{Values: []any{op.Insert}, Embed: true})
			}
		}
		return t
	}
	for _, c := range children {
		var ct *ysafe.Type
		switch c.Kind {
		case ysafe.KindXmlHook:
			ct = &ysafe.Type{Kind: c.Kind, Name: c.Name, Entries: c.Attributes}
		default:
			ct = xmlType(c.Kind, c.Name, c.Attributes, c.Children, c.Delta)
		}
		t.Pieces = append(t.Pieces, ysafe.Piece{Values: []any{ct}})
	}
	return t
}

// canonicalDelta drops null attributes and empty strings and joins neighbouring strings
// with the same attributes: two deltas that make the same text compare equal.
func canonicalDelta(ops []ysafe.TextOp) []ysafe.TextOp {
	var out []ysafe.TextOp
	for _, op := range ops {
		var attrs map[string]any
		for k, v := range op.Attributes {
			if v == nil {
				continue
			}
			if attrs == nil {
				attrs = map[string]any{}
			}
			attrs[k] = v
		}
		if s, ok := op.Insert.(string); ok {
			if s == "" {
				continue
			}
			if n := len(out); n > 0 {
				if prev, ok := out[n-1].Insert.(string); ok && reflect.DeepEqual(out[n-1].Attributes, attrs) {
					out[n-1].Insert = prev + s
					continue
				}
			}
		}
		out = append(out, ysafe.TextOp{Insert: op.Insert, Attributes: attrs})
	}
	return out
}

// canonical normalises a root for comparison.
func canonical(r ysafe.Root) ysafe.Root {
	r.Delta = canonicalDelta(r.Delta)
	r.Children = canonicalXML(r.Children)
	return r
}

func canonicalXML(nodes []ysafe.XMLNode) []ysafe.XMLNode {
	out := make([]ysafe.XMLNode, len(nodes))
	for i, n := range nodes {
		n.Delta = canonicalDelta(n.Delta)
		n.Children = canonicalXML(n.Children)
		if len(n.Attributes) == 0 {
			n.Attributes = nil
		}
		if len(n.Children) == 0 {
			n.Children = nil
		}
		out[i] = n
	}
	return out
}
