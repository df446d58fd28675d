package ysafe

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"

	y "github.com/skyterra/y-crdt"
)

// This file is the one place where a y-crdt Doc is used, and only ever a fresh one per call,
// never kept: Load and LoadAll apply updates to a new Doc and copy its content out into
// plain Go values; Build creates a new document from plain values and encodes it. All run
// under recover and under docMu.

// docMu serialises every use of a y-crdt Doc. y-crdt has package-level state that its Doc
// operations write without a lock (GlobalSearchMarkerTimestamp; docs/y-crdt.md, "What
// crashes or hangs it"), so two Docs may not be used at once even when they share nothing.
// Load and Build are for the admin API and the tools (inspect, export, import, compact),
// not for the path that serves rooms.
var docMu sync.Mutex

// MaxTypeDepth bounds how deeply shared types may nest in a document that Load copies out
// (a Map in an Array in an XmlElement ... counts one per type). An update can chain nested
// types as deep as its size allows; the copy is recursive, so the depth is checked.
const MaxTypeDepth = 512

var (
	// ErrTooDeep is returned (wrapped) by Load when shared types nest deeper than MaxTypeDepth.
	ErrTooDeep = errors.New("ysafe: shared types nest too deeply")
	// ErrUnsupported is returned (wrapped) by Build for content it cannot create.
	ErrUnsupported = errors.New("ysafe: unsupported content")
)

// Kind is the kind of a shared type.
type Kind uint8

// The kinds of shared types. A root type's kind is never written in an update (Yjs learns it
// from the application's getText/getMap/... call), so Load reports KindUnknown for roots and
// leaves the inference to its caller; nested types carry their kind in the update.
const (
	KindUnknown Kind = iota
	KindArray
	KindMap
	KindText
	KindXmlElement
	KindXmlFragment
	KindXmlHook
	KindXmlText
)

var kindNames = [...]string{"Unknown", "Array", "Map", "Text", "XmlElement", "XmlFragment", "XmlHook", "XmlText"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Content flags: which kinds of content a type's items hold.
type Content uint16

// The content flags of Type.Content.
const (
	// HasKeyed: items with a key (map entries, attributes).
	HasKeyed Content = 1 << iota
	// HasString: ContentString items.
	HasString
	// HasFormat: ContentFormat items (text formatting markers).
	HasFormat
	// HasEmbed: ContentEmbed items (text embeds).
	HasEmbed
	// HasXMLNode: ContentType items holding an XmlElement, XmlText or XmlHook.
	HasXMLNode
	// HasType: ContentType items holding any other shared type.
	HasType
	// HasValue: ContentAny, ContentJSON, ContentBinary or ContentDoc items.
	HasValue
)

// Undefined is JavaScript's undefined, which Any values can hold.
var Undefined = UndefinedValue{}

// UndefinedValue is the type of Undefined.
type UndefinedValue struct{}

// BigInt is a lib0 bigint64 value.
type BigInt int64

// Subdoc is a subdocument (ContentDoc), by its guid.
type Subdoc struct{ GUID string }

// Type is a shared type copied out of a y-crdt Doc. It holds only plain values and Types;
// nothing in it refers to y-crdt.
//
// Values (in Entries, Piece.Values, format values and nested in those) are nil (null),
// Undefined, bool, float64, BigInt, string, []byte (binary), []any, map[string]any, *Type
// (a nested shared type) or Subdoc.
type Type struct {
	Kind Kind
	// Name is an XmlElement's node name or an XmlHook's hook name.
	Name string
	// Entries are the visible keyed entries: a map's entries, an XML element's attributes,
	// a text's attributes.
	Entries map[string]any
	// Pieces are the visible items of the sequence, in document order.
	Pieces []Piece
	// Content tells which kinds of content the type's items hold, deleted items included
	// where their content was kept.
	Content Content
}

// Piece is one visible item of a sequence: a run of text, a format marker, or values.
type Piece struct {
	// Text is the string of a ContentString item.
	Text string
	// Format is set for a ContentFormat item: the attribute it sets from here on (a nil
	// Value ends the attribute).
	Format *Format
	// Values holds the content of any other item: one value per position (ContentAny,
	// ContentJSON), or one value (embed, binary, nested type, subdocument).
	Values []any
	// Embed marks a ContentEmbed item (Values has its one value).
	Embed bool
}

// Format is a text formatting marker.
type Format struct {
	Key   string
	Value any
}

// Snapshot is the content of a document.
type Snapshot struct {
	// Roots are the document's root types, by name.
	Roots map[string]*Type
	// StateVector is the next clock of every client the document has structs of.
	StateVector map[uint64]uint64
	// Incomplete reports that the update depends on structs or deletes it does not carry:
	// y-crdt keeps those pending, and Roots is missing what depends on them.
	Incomplete bool
}

// Load applies update, which must have passed yproto.ValidateUpdate, to a fresh y-crdt Doc
// (gc off, so deleted content the update carries stays visible to Content) and copies its
// content out. A panic in y-crdt is returned as an error wrapping ErrPanic.
func Load(update []byte) (*Snapshot, error) {
	return LoadAll([][]byte{update})
}

// LoadAll applies validated updates, in order, to one fresh y-crdt Doc and copies its
// content out. All of them are applied in one transaction, so y-crdt calls no observer of
// a type that one of them created; that keeps edits of an XmlElement created by an earlier
// update clear of the panic in that observer call (docs/y-crdt.md, "XmlElement edits
// panic"). Deletes of content that only a later update carries are dropped by y-crdt ("Early
// deletes are lost"): give updates in the order they were made (a room file's order), or
// merge them first.
func LoadAll(updates [][]byte) (snap *Snapshot, err error) {
	docMu.Lock()
	defer docMu.Unlock()
	defer guard("load", &err)
	doc := y.NewDoc("ysafe", false, y.DefaultGCFilter, nil, false)
	y.Transact(doc, func(*y.Transaction) {
		for _, u := range updates {
			y.ApplyUpdate(doc, u, nil)
		}
	}, nil, false)
	snap = &Snapshot{
		Roots:       make(map[string]*Type, len(doc.Share)),
		StateVector: make(map[uint64]uint64, len(doc.Store.Clients)),
		Incomplete:  doc.Store.PendingStructs != nil || len(doc.Store.PendingDs) > 0,
	}
	for client, clock := range y.GetStateVector(doc.Store) {
		snap.StateVector[uint64(client)] = uint64(clock)
	}
	for name, t := range doc.Share {
		c, err := copyType(t, 1)
		if err != nil {
			return nil, fmt.Errorf("root %q: %w", name, err)
		}
		snap.Roots[name] = c
	}
	return snap, nil
}

func kindOf(t y.IAbstractType) (Kind, string) {
	switch v := t.(type) {
	case *y.YArray:
		return KindArray, ""
	case *y.YMap:
		return KindMap, ""
	case *y.YText:
		return KindText, ""
	case *y.YXmlElement:
		return KindXmlElement, v.NodeName
	case *y.YXmlFragment:
		return KindXmlFragment, ""
	case *y.YXmlHook:
		return KindXmlHook, v.HookName
	case *y.YXmlText:
		return KindXmlText, ""
	}
	return KindUnknown, ""
}

func copyType(t y.IAbstractType, depth int) (*Type, error) {
	if depth > MaxTypeDepth {
		return nil, fmt.Errorf("%w (more than %d levels)", ErrTooDeep, MaxTypeDepth)
	}
	out := &Type{}
	out.Kind, out.Name = kindOf(t)
	for key, it := range t.GetMap() {
		out.Content |= HasKeyed
		if it.Deleted() {
			continue
		}
		vals, err := contentValues(it.Content, depth)
		if err != nil {
			return nil, fmt.Errorf("entry %q: %w", key, err)
		}
		if len(vals) == 0 {
			continue
		}
		if out.Entries == nil {
			out.Entries = make(map[string]any)
		}
		out.Entries[key] = vals[len(vals)-1] // the last write of the key, as Yjs reads a map
	}
	for n := t.StartItem(); n != nil; n = n.Right {
		out.Content |= contentFlag(n.Content)
		if n.Deleted() {
			continue
		}
		switch c := n.Content.(type) {
		case *y.ContentString:
			out.Pieces = append(out.Pieces, Piece{Text: c.Str})
		case *y.ContentFormat:
			v, err := copyJSON(c.Value)
			if err != nil {
				return nil, err
			}
			out.Pieces = append(out.Pieces, Piece{Format: &Format{Key: c.Key, Value: v}})
		case *y.ContentDeleted:
		default:
			vals, err := contentValues(n.Content, depth)
			if err != nil {
				return nil, err
			}
			if len(vals) > 0 {
				_, embed := c.(*y.ContentEmbed)
				out.Pieces = append(out.Pieces, Piece{Values: vals, Embed: embed})
			}
		}
	}
	return out, nil
}

func contentFlag(c y.IAbstractContent) Content {
	switch c := c.(type) {
	case *y.ContentString:
		return HasString
	case *y.ContentFormat:
		return HasFormat
	case *y.ContentEmbed:
		return HasEmbed
	case *y.ContentType:
		switch c.Type.(type) {
		case *y.YXmlElement, *y.YXmlText, *y.YXmlHook:
			return HasXMLNode
		}
		return HasType
	case *y.ContentAny, *y.ContentJson, *y.ContentBinary, *y.ContentDoc:
		return HasValue
	}
	return 0
}

// contentValues copies the values of one item's content (what Yjs content.getContent()
// gives, with nested types copied).
func contentValues(c y.IAbstractContent, depth int) ([]any, error) {
	switch c := c.(type) {
	case *y.ContentAny:
		return copyValues(c.Arr, copyAny)
	case *y.ContentJson:
		return copyValues(c.Arr, copyJSON)
	case *y.ContentEmbed:
		v, err := copyJSON(c.Embed)
		return []any{v}, err
	case *y.ContentBinary:
		return []any{append([]byte{}, c.Content...)}, nil
	case *y.ContentType:
		t, err := copyType(c.Type, depth+1)
		return []any{t}, err
	case *y.ContentDoc:
		guid := ""
		if c.Doc != nil {
			guid = c.Doc.Guid
		}
		return []any{Subdoc{GUID: guid}}, nil
	case *y.ContentString:
		// A string in a map or array (Yjs never writes one there): one value per
		// character, as Yjs splits it.
		var vals []any
		for _, r := range c.Str {
			vals = append(vals, string(r))
		}
		return vals, nil
	case *y.ContentFormat, *y.ContentDeleted:
		return nil, nil
	}
	return nil, fmt.Errorf("unexpected content %T", c)
}

func copyValues(in []any, conv func(any) (any, error)) ([]any, error) {
	out := make([]any, len(in))
	for i, v := range in {
		c, err := conv(v)
		if err != nil {
			return nil, err
		}
		out[i] = c
	}
	return out, nil
}

// copyAny copies a value that y-crdt read with lib0's readAny.
func copyAny(v any) (any, error) {
	switch v := v.(type) {
	case nil, y.NullType:
		return nil, nil
	case y.UndefinedType:
		return Undefined, nil
	case bool, string, float64:
		return v, nil
	case int:
		return float64(v), nil
	case float32:
		return float64(v), nil
	case int64:
		return BigInt(v), nil
	case []byte:
		return append([]byte{}, v...), nil
	case []any:
		return copyValues(v, copyAny)
	case map[string]any:
		return copyObject(v, copyAny)
	}
	return nil, fmt.Errorf("unexpected any value %T", v)
}

// copyJSON copies a value that y-crdt read with encoding/json (ContentJSON, embeds,
// format values).
func copyJSON(v any) (any, error) {
	switch v := v.(type) {
	case nil, bool, string, float64:
		return v, nil
	case y.UndefinedType:
		return Undefined, nil
	case []any:
		return copyValues(v, copyJSON)
	case map[string]any:
		return copyObject(v, copyJSON)
	}
	return nil, fmt.Errorf("unexpected JSON value %T", v)
}

func copyObject(in map[string]any, conv func(any) (any, error)) (map[string]any, error) {
	out := make(map[string]any, len(in))
	for k, v := range in {
		c, err := conv(v)
		if err != nil {
			return nil, err
		}
		out[k] = c
	}
	return out, nil
}

// ---------------------------------------------------------------------------------------
// Building a document

// Root describes a root type for Build. Values are JSON values as encoding/json decodes
// them into an any (nil, bool, float64, string, []any, map[string]any).
type Root struct {
	Kind Kind // KindText, KindMap, KindArray or KindXmlFragment
	// Text: the text as a delta.
	Delta []TextOp
	// Map: the entries.
	Entries map[string]any
	// Array: the elements.
	Values []any
	// XmlFragment: the children.
	Children []XMLNode
}

// TextOp is one insert of a text delta: a string, or an embed (an object), with the
// attributes it has.
type TextOp struct {
	Insert     any
	Attributes map[string]any
}

// XMLNode is a child of an XmlFragment or XmlElement: an XmlElement (Name, Attributes,
// Children), an XmlText (Delta) or an XmlHook (Name, and its entries in Attributes).
type XMLNode struct {
	Kind       Kind // KindXmlElement, KindXmlText or KindXmlHook
	Name       string
	Attributes map[string]any
	Children   []XMLNode
	Delta      []TextOp
}

// Build creates a document holding roots in a fresh y-crdt Doc, in one transaction, and
// returns it encoded as one v1 update. Every item is integrated at the end of its parent,
// so the document has exactly the given content; a text's formatting is opened and closed
// with format markers around its runs, as Yjs inserts them.
//
// Everything is created in one transaction: y-crdt then calls no observer of a type created
// in it, which keeps XmlElements clear of the observer panic (docs/y-crdt.md, "XmlElement
// edits panic"). Numbers that are integers of at most 31 bits are stored as integers and all
// others as float64, as lib0 writes them.
// Callers must check the result (validate, render, compare): y-crdt reports nothing.
func Build(roots map[string]Root) (update []byte, err error) {
	docMu.Lock()
	defer docMu.Unlock()
	defer guard("build", &err)
	doc := y.NewDoc("ysafe", true, y.DefaultGCFilter, nil, false)
	b := &builder{doc: doc}
	names := make([]string, 0, len(roots))
	for name := range roots {
		names = append(names, name)
	}
	sort.Strings(names)
	doc.Transact(func(trans *y.Transaction) {
		b.trans = trans
		for _, name := range names {
			if b.err != nil {
				return
			}
			b.root(name, roots[name])
		}
	}, nil)
	if b.err != nil {
		return nil, b.err
	}
	return y.EncodeStateAsUpdate(doc, nil), nil
}

type builder struct {
	doc   *y.Doc
	trans *y.Transaction
	err   error
}

func (b *builder) fail(format string, args ...any) {
	if b.err == nil {
		b.err = fmt.Errorf(format, args...)
	}
}

func (b *builder) root(name string, r Root) {
	switch r.Kind {
	case KindText:
		b.text(b.doc.GetText(name), r.Delta)
	case KindMap:
		m := b.doc.GetMap(name)
		for _, key := range sortedKeys(r.Entries) {
			b.set(m, key, r.Entries[key])
		}
	case KindArray:
		if len(r.Values) > 0 {
			vals := make([]any, len(r.Values))
			for i, v := range r.Values {
				vals[i] = b.anyValue(v)
			}
			b.push(b.doc.GetArray(name), nil, y.NewContentAny(vals))
		} else {
			b.doc.GetArray(name)
		}
	case KindXmlFragment:
		b.xmlChildren(b.doc.GetXmlFragment(name), r.Children)
	default:
		b.fail("%w: root %q of kind %v", ErrUnsupported, name, r.Kind)
	}
}

// push integrates content at the end of parent's sequence, after left (its last item).
func (b *builder) push(parent y.IAbstractType, left *y.Item, content y.IAbstractContent) *y.Item {
	client := b.doc.ClientID
	item := y.NewItem(y.GenID(client, y.GetState(b.doc.Store, client)), left, y.GetItemLastID(left), nil, nil, parent, "", content)
	item.Integrate(b.trans, 0)
	return item
}

// set integrates a map entry (or an attribute) of parent.
func (b *builder) set(parent y.IAbstractType, key string, v any) {
	client := b.doc.ClientID
	left := parent.GetMap()[key]
	item := y.NewItem(y.GenID(client, y.GetState(b.doc.Store, client)), left, y.GetItemLastID(left), nil, nil, parent, key, y.NewContentAny([]any{b.anyValue(v)}))
	item.Integrate(b.trans, 0)
}

// text appends a delta to an empty text.
func (b *builder) text(t y.IAbstractType, delta []TextOp) {
	var left *y.Item
	current := map[string]any{}
	for _, op := range delta {
		// Close the attributes this op does not have, open those it has or changes.
		for _, key := range sortedKeys(current) {
			if _, keep := op.Attributes[key]; !keep {
				left = b.push(t, left, y.NewContentFormat(key, nil))
				delete(current, key)
			}
		}
		for _, key := range sortedKeys(op.Attributes) {
			v := b.jsonValue(op.Attributes[key])
			if v == nil {
				continue // null means "not set"
			}
			if old, ok := current[key]; ok && equalJSON(old, v) {
				continue
			}
			left = b.push(t, left, y.NewContentFormat(key, v))
			current[key] = v
		}
		switch ins := op.Insert.(type) {
		case string:
			if ins != "" {
				left = b.push(t, left, y.NewContentString(ins))
			}
		case map[string]any:
			left = b.push(t, left, y.NewContentEmbed(b.jsonValue(ins)))
		default:
			b.fail("%w: text insert of %T (a string or an object)", ErrUnsupported, op.Insert)
			return
		}
	}
	for _, key := range sortedKeys(current) {
		left = b.push(t, left, y.NewContentFormat(key, nil))
	}
}

func (b *builder) xmlChildren(parent y.IAbstractType, children []XMLNode) {
	var left *y.Item
	for _, c := range children {
		switch c.Kind {
		case KindXmlElement:
			el := y.NewYXmlElement(c.Name)
			left = b.push(parent, left, y.NewContentType(el))
			for _, key := range sortedKeys(c.Attributes) {
				b.set(el, key, c.Attributes[key])
			}
			b.xmlChildren(el, c.Children)
		case KindXmlText:
			xt := y.NewYXmlText()
			left = b.push(parent, left, y.NewContentType(xt))
			b.text(xt, c.Delta)
		case KindXmlHook:
			h := y.NewYXmlHook(c.Name)
			left = b.push(parent, left, y.NewContentType(h))
			for _, key := range sortedKeys(c.Attributes) {
				b.set(h, key, c.Attributes[key])
			}
		default:
			b.fail("%w: XML child of kind %v", ErrUnsupported, c.Kind)
			return
		}
	}
}

// anyValue converts a JSON value into what y-crdt writes as the same lib0 Any.
func (b *builder) anyValue(v any) any {
	switch v := v.(type) {
	case nil:
		return y.Null // y-crdt writes a Go nil as undefined
	case float64:
		if v == math.Trunc(v) && math.Abs(v) <= math.MaxInt32 && !(v == 0 && math.Signbit(v)) {
			return int(v)
		}
		return v
	case bool, string:
		return v
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = b.anyValue(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = b.anyValue(e)
		}
		return out
	}
	b.fail("%w: value of type %T", ErrUnsupported, v)
	return y.Null
}

// jsonValue checks a JSON value for an embed or a format, which y-crdt writes with
// encoding/json.
func (b *builder) jsonValue(v any) any {
	switch v := v.(type) {
	case nil, bool, string, float64:
		return v
	case []any:
		for _, e := range v {
			b.jsonValue(e)
		}
		return v
	case map[string]any:
		for _, e := range v {
			b.jsonValue(e)
		}
		return v
	}
	b.fail("%w: value of type %T", ErrUnsupported, v)
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// equalJSON compares two JSON values.
func equalJSON(a, b any) bool {
	switch a := a.(type) {
	case []any:
		bb, ok := b.([]any)
		if !ok || len(a) != len(bb) {
			return false
		}
		for i := range a {
			if !equalJSON(a[i], bb[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		bb, ok := b.(map[string]any)
		if !ok || len(a) != len(bb) {
			return false
		}
		for k, v := range a {
			w, ok := bb[k]
			if !ok || !equalJSON(v, w) {
				return false
			}
		}
		return true
	}
	return a == b
}
