package yproto

import (
	"bytes"
	"slices"
	"testing"

	"github.com/caddy-wiredb/wiredb/internal/yref"
)

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
			viaYCRDT, err := yref.Diff(v.Update, v.SV)
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
	}{{"native", DiffUpdate}, {"y-crdt", yref.Diff}} {
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

// FuzzDiffUpdate: for any update and state vector that validate, DiffUpdate succeeds, its
// result validates, each client's range in it lies within the update's and starts at or
// after the peer's clock (or where the update's structs start), and the delete set is the
// update's.
func FuzzDiffUpdate(f *testing.F) {
	for _, v := range loadDiffVectors(f) {
		if len(v.Update) < 4096 {
			f.Add([]byte(v.Update), []byte(v.SV))
		}
	}
	f.Fuzz(func(t *testing.T, u, sv []byte) {
		ui, err := ValidateUpdate(u, Limits{})
		if err != nil {
			return
		}
		clocks, err := ValidateStateVector(sv)
		if err != nil {
			return
		}
		diff, err := DiffUpdate(u, sv)
		if err != nil {
			t.Fatalf("valid update and state vector do not diff: %v", err)
		}
		di, err := ValidateUpdate(diff, Limits{})
		if err != nil {
			t.Fatalf("diff does not validate: %v", err)
		}
		whole := map[uint64]ClientRange{}
		for _, r := range ui.Structs {
			whole[r.Client] = r
		}
		for _, r := range di.Structs {
			w, ok := whole[r.Client]
			if !ok || r.Clock < w.Clock || r.End != w.End || r.Clock < min(clocks[r.Client], w.End) && r.Clock != w.Clock {
				t.Fatalf("diff range %+v, update's %+v, peer's clock %d", r, w, clocks[r.Client])
			}
		}
		if !slices.Equal(normalizeDeletes(di.Deletes), normalizeDeletes(ui.Deletes)) {
			t.Fatal("delete sets differ")
		}
	})
}
