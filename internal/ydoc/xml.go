package ydoc

import (
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/caddy-wiredb/wiredb/internal/ysafe"
)

// xmlString renders a type as Yjs' toString() does for XML types: an XmlElement as
// <name attr="v">children</name> with attributes sorted and the name lower-cased, an
// XmlFragment as its children, an XmlText as its delta with each formatting attribute as a
// tag around the text. Yjs escapes nothing, and neither does this.
func xmlString(t *ysafe.Type) string {
	var b strings.Builder
	writeXML(&b, t)
	return b.String()
}

func writeXML(b *strings.Builder, t *ysafe.Type) {
	switch t.Kind {
	case ysafe.KindXmlElement:
		name := strings.ToLower(t.Name)
		b.WriteString("<" + name)
		for _, k := range sortedKeys(t.Entries) {
			b.WriteString(" " + k + `="` + jsString(t.Entries[k]) + `"`)
		}
		b.WriteString(">")
		writeXMLChildren(b, t)
		b.WriteString("</" + name + ">")
	case ysafe.KindXmlText:
		writeXMLText(b, t)
	case ysafe.KindText:
		b.WriteString(textString(t)) // YText.toString
	case ysafe.KindXmlFragment, ysafe.KindUnknown:
		writeXMLChildren(b, t)
	default:
		b.WriteString("[object Object]") // Map, Array and XmlHook have no toString of their own
	}
}

// writeXMLChildren writes each child's toString(), as XmlFragment.toString does.
func writeXMLChildren(b *strings.Builder, t *ysafe.Type) {
	for _, p := range t.Pieces {
		switch {
		case p.Format != nil:
		case p.Values == nil:
			b.WriteString(p.Text)
		default:
			for _, v := range p.Values {
				b.WriteString(jsString(v))
			}
		}
	}
}

// writeXMLText is YXmlText.toString: for each op of the delta, one tag per attribute
// (sorted by name) holding the attribute value's own keys as XML attributes (sorted), then
// the insert, then the closing tags.
func writeXMLText(b *strings.Builder, t *ysafe.Type) {
	for _, op := range textOps(t) {
		names := sortedKeys(op.attrs)
		for _, name := range names {
			b.WriteString("<" + name)
			keys, vals := jsForIn(op.attrs[name])
			order := make([]int, len(keys))
			for i := range order {
				order[i] = i
			}
			sort.SliceStable(order, func(i, j int) bool { return keys[order[i]] < keys[order[j]] })
			for _, i := range order {
				b.WriteString(" " + keys[i] + `="` + jsString(vals[i]) + `"`)
			}
			b.WriteString(">")
		}
		b.WriteString(jsString(op.insert))
		for i := len(names) - 1; i >= 0; i-- {
			b.WriteString("</" + names[i] + ">")
		}
	}
}

// jsForIn lists what JavaScript's for...in visits on a value: an object's keys, a string's
// or array's indices. Other values have none.
func jsForIn(v any) (keys []string, vals []any) {
	switch v := v.(type) {
	case map[string]any:
		for _, k := range sortedKeys(v) {
			keys = append(keys, k)
			vals = append(vals, v[k])
		}
	case []any:
		for i, e := range v {
			keys = append(keys, strconv.Itoa(i))
			vals = append(vals, e)
		}
	case string:
		i := 0
		for _, r := range v {
			keys = append(keys, strconv.Itoa(i))
			vals = append(vals, string(r))
			i++
		}
	}
	return keys, vals
}

// jsString is JavaScript's String(v), for the values an XML string can hold.
func jsString(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case ysafe.UndefinedValue:
		return "undefined"
	case bool:
		return strconv.FormatBool(v)
	case string:
		return v
	case float64:
		return jsNumber(v)
	case ysafe.BigInt:
		return strconv.FormatInt(int64(v), 10)
	case []byte:
		parts := make([]string, len(v))
		for i, c := range v {
			parts[i] = strconv.Itoa(int(c))
		}
		return strings.Join(parts, ",")
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			if e != nil && e != ysafe.Undefined {
				parts[i] = jsString(e)
			}
		}
		return strings.Join(parts, ",")
	case *ysafe.Type:
		return xmlString(v)
	}
	return "[object Object]"
}

// jsNumber formats a number as JavaScript's Number.prototype.toString does.
func jsNumber(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case f == 0:
		return "0"
	}
	// encoding/json formats finite numbers as ECMAScript does.
	b, _ := json.Marshal(f)
	return string(b)
}

// xmlChildren renders an XML type's children as a JSON tree.
func xmlChildren(t *ysafe.Type) []any {
	out := []any{}
	for _, p := range t.Pieces {
		switch {
		case p.Format != nil:
		case p.Values == nil:
			out = append(out, valueNodeJSON{Type: "Value", Value: p.Text})
		default:
			for _, v := range p.Values {
				out = append(out, xmlNode(v))
			}
		}
	}
	return out
}

// The nodes of an XML tree, with their members in a readable order.
type (
	xmlElementJSON struct {
		Type       string         `json:"type"`
		NodeName   string         `json:"nodeName"`
		Attributes map[string]any `json:"attributes"`
		Children   []any          `json:"children"`
	}
	xmlTextJSON struct {
		Type  string `json:"type"`
		Delta []any  `json:"delta"`
	}
	xmlHookJSON struct {
		Type     string         `json:"type"`
		HookName string         `json:"hookName"`
		Value    map[string]any `json:"value"`
	}
	// valueNodeJSON is anything else in an XML type (Yjs never puts anything else there).
	valueNodeJSON struct {
		Type  string `json:"type"`
		Value any    `json:"value"`
	}
)

func xmlNode(v any) any {
	t, ok := v.(*ysafe.Type)
	if !ok {
		return valueNodeJSON{Type: "Value", Value: jsonValue(v)}
	}
	switch t.Kind {
	case ysafe.KindXmlElement:
		return xmlElementJSON{Type: "XmlElement", NodeName: t.Name, Attributes: mapJSON(t), Children: xmlChildren(t)}
	case ysafe.KindXmlText:
		delta, _ := textDelta(t)
		return xmlTextJSON{Type: "XmlText", Delta: delta}
	case ysafe.KindXmlHook:
		return xmlHookJSON{Type: "XmlHook", HookName: t.Name, Value: mapJSON(t)}
	}
	return valueNodeJSON{Type: t.Kind.String(), Value: typeJSON(t)}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
