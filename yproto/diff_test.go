package yproto

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/caddy-wiredb/wiredb/internal/ysafe"
)

type diffVector struct {
	Name   string   `json:"name"`
	Note   string   `json:"note"`
	Update hexBytes `json:"update"`
	SV     hexBytes `json:"sv"`
	Diff   hexBytes `json:"diff"`
}

func loadDiffVectors(t testing.TB) []diffVector {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "vectors", "yjs_merges.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Diffs []diffVector `json:"diffs"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Diffs) < 20 {
		t.Fatalf("%d diff vectors, want the 20 merges.mjs writes", len(f.Diffs))
	}
	return f.Diffs
}

// TestDiffUpdateMatchesYjs: for every vector, DiffUpdate writes the bytes Yjs's
// diffUpdate wrote, and y-crdt's DiffUpdate (what the server used before) the same
// document.
func TestDiffUpdateMatchesYjs(t *testing.T) {
	for _, v := range loadDiffVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			if _, err := ValidateUpdate(v.Update, Limits{}); err != nil {
				t.Fatal(err)
			}
			got, err := DiffUpdate(v.Update, v.SV)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, v.Diff) {
				t.Fatalf("%s: %x\nYjs: %x", v.Note, got, v.Diff)
			}
			viaYCRDT, err := ysafe.Diff(v.Update, v.SV)
			if err != nil {
				t.Fatal(err)
			}
			assertSameDocument(t, got, viaYCRDT)
		})
	}
}

// TestDiffUpdateRejects: a state vector that does not validate is an error, not a panic.
func TestDiffUpdateRejects(t *testing.T) {
	u := loadDiffVectors(t)[0].Update
	for _, sv := range [][]byte{nil, {1}, {1, 5}, {2, 1, 1, 1, 1}, {1, 1, 1, 0}} {
		if _, err := DiffUpdate(u, sv); err == nil {
			t.Errorf("state vector %x: no error", sv)
		}
	}
	if _, err := DiffUpdate([]byte{1, 1}, []byte{0}); err == nil {
		t.Error("truncated update: no error")
	}
}

// BenchmarkDiffUpdate diffs a merged session against a peer's state vector from halfway
// through it: a reconnecting client's step 1.
func BenchmarkDiffUpdate(b *testing.B) {
	var v diffVector
	for _, d := range loadDiffVectors(b) {
		if d.Name == "diff_after_120" {
			v = d
		}
	}
	for _, impl := range []struct {
		name string
		diff func(u, sv []byte) ([]byte, error)
	}{{"native", DiffUpdate}, {"y-crdt", ysafe.Diff}} {
		b.Run(impl.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := impl.diff(v.Update, v.SV); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
