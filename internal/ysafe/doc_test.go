package ysafe

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"

	y "github.com/skyterra/y-crdt"
)

// xmlEditUpdates returns the updates of the ydoc vector "xml_element_edits": Yjs updates
// that edit an XmlElement created by an earlier one.
func xmlEditUpdates(t *testing.T) [][]byte {
	t.Helper()
	data, err := os.ReadFile("../ydoc/testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Vectors []struct {
			Name    string   `json:"name"`
			Updates []string `json:"updates"`
		} `json:"vectors"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	for _, v := range f.Vectors {
		if v.Name != "xml_element_edits" {
			continue
		}
		var us [][]byte
		for _, h := range v.Updates {
			u, err := hex.DecodeString(h)
			if err != nil {
				t.Fatal(err)
			}
			us = append(us, u)
		}
		return us
	}
	t.Fatal("vector xml_element_edits missing")
	return nil
}

// Applied one by one to a live Doc, the updates make y-crdt panic (docs/y-crdt.md,
// "XmlElement edits panic");
// LoadAll applies them in one transaction and does not.
func TestLoadAllAvoidsXmlElementObserverPanic(t *testing.T) {
	updates := xmlEditUpdates(t)
	panicked := func() (p bool) {
		defer func() { p = recover() != nil }()
		doc := y.NewDoc("t", false, y.DefaultGCFilter, nil, false)
		for _, u := range updates {
			y.ApplyUpdate(doc, u, nil)
		}
		return false
	}()
	if !panicked {
		t.Log("y-crdt no longer panics on XmlElement edits (bug 1 fixed?)")
	}
	snap, err := LoadAll(updates)
	if err != nil {
		t.Fatal(err)
	}
	doc := snap.Roots["doc"]
	if doc == nil || len(doc.Pieces) != 1 {
		t.Fatalf("root doc = %+v", doc)
	}
	p := doc.Pieces[0].Values[0].(*Type)
	if p.Kind != KindXmlElement || p.Name != "p" || p.Entries["class"] != "b" || len(p.Pieces) != 2 {
		t.Fatalf("element = %+v", p)
	}
}

func TestLoadCopiesValues(t *testing.T) {
	update, err := Build(map[string]Root{
		"m": {Kind: KindMap, Entries: map[string]any{
			"i": 7.0, "f": 0.5, "s": "x", "n": nil, "b": true,
			"o": map[string]any{"a": []any{1.0, nil}},
		}},
		"t": {Kind: KindText, Delta: []TextOp{
			{Insert: "ab", Attributes: map[string]any{"bold": true}},
			{Insert: map[string]any{"img": "x"}},
			{Insert: "c"},
		}},
		"a": {Kind: KindArray, Values: []any{1.0, "two"}},
		"x": {Kind: KindXmlFragment, Children: []XMLNode{
			{Kind: KindXmlElement, Name: "p", Attributes: map[string]any{"k": "v"}, Children: []XMLNode{
				{Kind: KindXmlText, Delta: []TextOp{{Insert: "hi"}}},
			}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := Load(update)
	if err != nil {
		t.Fatal(err)
	}
	m := snap.Roots["m"]
	if m.Kind != KindUnknown || m.Content != HasKeyed {
		t.Errorf("map root: kind %v content %b", m.Kind, m.Content)
	}
	if m.Entries["i"] != 7.0 || m.Entries["n"] != nil || m.Entries["s"] != "x" {
		t.Errorf("map entries %#v", m.Entries)
	}
	if _, ok := m.Entries["n"]; !ok {
		t.Error("null entry missing")
	}
	txt := snap.Roots["t"]
	if txt.Content&(HasString|HasFormat|HasEmbed) != HasString|HasFormat|HasEmbed {
		t.Errorf("text content %b", txt.Content)
	}
	// bold on, "ab", bold off, embed, "c"
	if len(txt.Pieces) != 5 || txt.Pieces[0].Format == nil || txt.Pieces[1].Text != "ab" || !txt.Pieces[3].Embed {
		t.Errorf("text pieces %+v", txt.Pieces)
	}
	x := snap.Roots["x"]
	if x.Content != HasXMLNode {
		t.Errorf("xml content %b", x.Content)
	}
	if len(snap.StateVector) != 1 {
		t.Errorf("state vector %v", snap.StateVector)
	}
}

func TestBuildRejectsUnsupported(t *testing.T) {
	for name, r := range map[string]Root{
		"kind":    {Kind: KindXmlElement},
		"value":   {Kind: KindArray, Values: []any{struct{}{}}},
		"insert":  {Kind: KindText, Delta: []TextOp{{Insert: 1.0}}},
		"xmlnode": {Kind: KindXmlFragment, Children: []XMLNode{{Kind: KindMap}}},
	} {
		if _, err := Build(map[string]Root{"r": r}); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: err = %v, want ErrUnsupported", name, err)
		}
	}
}

// Types nested deeper than MaxTypeDepth are refused, not followed down the Go stack.
func TestLoadRefusesDeepNesting(t *testing.T) {
	node := XMLNode{Kind: KindXmlText, Delta: []TextOp{{Insert: "deep"}}}
	for range MaxTypeDepth + 10 {
		node = XMLNode{Kind: KindXmlElement, Name: "div", Children: []XMLNode{node}}
	}
	update, err := Build(map[string]Root{"x": {Kind: KindXmlFragment, Children: []XMLNode{node}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(update); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("err = %v, want ErrTooDeep", err)
	}
}

// Load of bytes y-crdt cannot read (here: a valid update whose parent is an item of its own
// client it does not carry) returns the panic as an error.
func TestLoadPanicBecomesError(t *testing.T) {
	u := []byte{1, 1, 1, 0, 4, 0, 1, 5, 1, 'a', 0}
	if _, err := Load(u); !errors.Is(err, ErrPanic) {
		t.Fatalf("err = %v, want ErrPanic", err)
	}
}
