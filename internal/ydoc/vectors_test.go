package ydoc

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"reflect"
	"testing"

	"github.com/caddy-wiredb/wiredb/internal/yref"
)

// The vectors in testdata/vectors.json are written by testdata/gen/gen.mjs with Yjs
// 13.6.33: documents built by Yjs, the updates that built them, and what Yjs' own toJSON(),
// toString() and toDelta() give for each root.

type vector struct {
	Name     string          `json:"name"`
	Note     string          `json:"note"`
	Updates  []string        `json:"updates"`
	Merged   string          `json:"merged"`
	State    string          `json:"state"`
	Expected json.RawMessage `json:"expected"`
	// ExpectedMerged, when set, is what the merged updates render as.
	ExpectedMerged json.RawMessage `json:"expectedMerged"`
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	data, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Yjs     string   `json:"yjs"`
		Vectors []vector `json:"vectors"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	return f.Vectors
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameJSON compares two JSON texts as values (member order and number spelling aside).
func sameJSON(t testing.TB, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("%v in %s", err, a)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	return reflect.DeepEqual(va, vb)
}

// TestVectors renders each Yjs document three ways (Yjs' encodeStateAsUpdate, Yjs'
// mergeUpdates of every update, and ysafe's merge of every update, as a room file holds
// them) and compares with what Yjs renders.
func TestVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			t.Parallel()
			updates := make([][]byte, len(v.Updates))
			for i, u := range v.Updates {
				updates[i] = unhex(t, u)
			}
			ours, err := yref.Merge(updates)
			if err != nil {
				t.Fatal(err)
			}
			merged := v.Expected
			if v.ExpectedMerged != nil {
				merged = v.ExpectedMerged
			}
			for _, c := range []struct {
				name   string
				update []byte
				want   json.RawMessage
			}{
				{"state", unhex(t, v.State), v.Expected},
				{"yjs merged", unhex(t, v.Merged), merged},
				{"ysafe merged", ours, merged},
			} {
				got, err := ToJSON(c.update)
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				if !sameJSON(t, got, c.want) {
					t.Errorf("%s (%s):\n got %s\nwant %s", c.name, v.Note, got, c.want)
				}
			}
		})
	}
}

// Every update of the xml vectors but the first edits an XmlElement that an earlier one
// created: applied one by one to a live y-crdt Doc, they panic (docs/y-crdt.md,
// "XmlElement edits panic").
// Merged into one update, every prefix of the history renders.
func TestXmlElementEditsMerged(t *testing.T) {
	for _, v := range loadVectors(t) {
		if v.Name != "xml" && v.Name != "xml_element_edits" {
			continue
		}
		var updates [][]byte
		for i, u := range v.Updates {
			updates = append(updates, unhex(t, u))
			merged, err := yref.Merge(updates)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ToJSON(merged); err != nil {
				t.Fatalf("%s: first %d updates: %v", v.Name, i+1, err)
			}
		}
	}
}

// RenderAll of a document's updates, in the order they were made, renders as the merged
// state does, with the same state vector: the check compaction relies on.
func TestRenderAllMatchesMerged(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			t.Parallel()
			updates := make([][]byte, len(v.Updates))
			for i, u := range v.Updates {
				updates[i] = unhex(t, u)
			}
			all, err := RenderAll(updates)
			if err != nil {
				t.Fatal(err)
			}
			merged, err := yref.Merge(updates)
			if err != nil {
				t.Fatal(err)
			}
			one, err := Render(merged)
			if err != nil {
				t.Fatal(err)
			}
			a, _ := all.JSON()
			b, _ := one.JSON()
			if !sameJSON(t, a, b) {
				t.Errorf("updates in order:\n%s\nmerged:\n%s", a, b)
			}
			if !reflect.DeepEqual(all.StateVector, one.StateVector) {
				t.Errorf("state vectors differ: %v vs %v", all.StateVector, one.StateVector)
			}
		})
	}
}
