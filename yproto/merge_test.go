package yproto

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/caddy-wiredb/wiredb/internal/yref"
	"github.com/caddy-wiredb/wiredb/internal/ysafe"
)

// mergeVector is one case of testdata/vectors/yjs_merges.json (testdata/gen/merges.mjs):
// updates and what Yjs 13.6's Y.mergeUpdates made of them.
type mergeVector struct {
	Name   string     `json:"name"`
	Note   string     `json:"note"`
	Inputs []hexBytes `json:"inputs"`
	Merged hexBytes   `json:"merged"`
}

// diffVector is one diff of the same file: an update, a state vector and what Yjs's
// Y.diffUpdate made of them.
type diffVector struct {
	Name   string   `json:"name"`
	Note   string   `json:"note"`
	Update hexBytes `json:"update"`
	SV     hexBytes `json:"sv"`
	Diff   hexBytes `json:"diff"`
}

type mergeVectorFile struct {
	Cases []mergeVector `json:"cases"`
	Diffs []diffVector  `json:"diffs"`
}

var mergeVectors = sync.OnceValues(func() (f mergeVectorFile, err error) {
	b, err := os.ReadFile(filepath.Join("testdata", "vectors", "yjs_merges.json"))
	if err == nil {
		err = json.Unmarshal(b, &f)
	}
	if err == nil && (len(f.Cases) < 43 || len(f.Diffs) < 20) {
		err = fmt.Errorf("%d merge and %d diff vectors, want the 43 and 20 merges.mjs writes", len(f.Cases), len(f.Diffs))
	}
	return f, err
})

func loadMergeVectors(t testing.TB) []mergeVector {
	t.Helper()
	f, err := mergeVectors()
	if err != nil {
		t.Fatal(err)
	}
	return f.Cases
}

func loadDiffVectors(t testing.TB) []diffVector {
	t.Helper()
	f, err := mergeVectors()
	if err != nil {
		t.Fatal(err)
	}
	return f.Diffs
}

func toUpdates(hs []hexBytes) [][]byte {
	out := make([][]byte, len(hs))
	for i, h := range hs {
		out[i] = h
	}
	return out
}

// assertSameDocument fails unless got and want are valid updates that carry the same
// clock ranges, the same delete set and the same document (as y-crdt reads it).
func assertSameDocument(t *testing.T, got, want []byte) {
	t.Helper()
	assertDocuments(t, got, want, false)
}

// assertSameVisibleDocument is assertSameDocument without the kinds of deleted content a
// document holds (ysafe reports those, with gc off, where content was kept).
func assertSameVisibleDocument(t *testing.T, got, want []byte) {
	t.Helper()
	assertDocuments(t, got, want, true)
}

func assertDocuments(t *testing.T, got, want []byte, visibleOnly bool) {
	t.Helper()
	gi, err := ValidateUpdate(got, Limits{})
	if err != nil {
		t.Fatalf("update does not validate: %v", err)
	}
	wi, err := ValidateUpdate(want, Limits{})
	if err != nil {
		t.Fatalf("expected update does not validate: %v", err)
	}
	if g, w := normalizeRanges(gi.Structs), normalizeRanges(wi.Structs); !slices.Equal(g, w) {
		t.Fatalf("clock ranges differ:\n got %v\nwant %v", g, w)
	}
	if g, w := normalizeDeletes(gi.Deletes), normalizeDeletes(wi.Deletes); !slices.Equal(g, w) {
		t.Fatalf("delete sets differ:\n got %v\nwant %v", g, w)
	}
	gs, err := ysafe.Load(got)
	if err != nil {
		t.Fatalf("y-crdt cannot read the update: %v", err)
	}
	ws, err := ysafe.Load(want)
	if err != nil {
		t.Fatalf("y-crdt cannot read the expected update: %v", err)
	}
	if visibleOnly {
		for _, s := range []*ysafe.Snapshot{gs, ws} {
			for _, root := range s.Roots {
				clearContentKinds(root)
			}
		}
	}
	if !reflect.DeepEqual(gs, ws) {
		t.Fatalf("documents differ:\n got %s\nwant %s", snapshotJSON(t, gs), snapshotJSON(t, ws))
	}
}

func snapshotJSON(t *testing.T, s *ysafe.Snapshot) []byte {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func normalizeRanges(r []ClientRange) []ClientRange {
	r = slices.Clone(r)
	slices.SortFunc(r, func(a, b ClientRange) int { return cmp.Compare(a.Client, b.Client) })
	return r
}

// normalizeDeletes sorts and joins touching ranges, as the union a delete set stands for.
func normalizeDeletes(d []DeleteRange) []DeleteRange {
	d = slices.Clone(d)
	slices.SortFunc(d, func(a, b DeleteRange) int {
		return cmp.Or(cmp.Compare(a.Client, b.Client), cmp.Compare(a.Clock, b.Clock))
	})
	var out []DeleteRange
	for _, x := range d {
		if n := len(out); n > 0 && out[n-1].Client == x.Client && out[n-1].Clock+out[n-1].Len >= x.Clock {
			out[n-1].Len = max(out[n-1].Len, x.Clock+x.Len-out[n-1].Clock)
			continue
		}
		out = append(out, x)
	}
	return out
}

// TestMergeUpdatesMatchesYjs: for every vector, MergeUpdates writes an update with Yjs's
// clock ranges, delete set and document, and, where no two inputs carry a struct at the
// same clock (Yjs then keeps whichever its sort puts first, MergeUpdates the longer), the
// very bytes Yjs wrote.
func TestMergeUpdatesMatchesYjs(t *testing.T) {
	identical := 0
	vectors := loadMergeVectors(t)
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			inputs := toUpdates(v.Inputs)
			for i, in := range inputs {
				if _, err := ValidateUpdate(in, Limits{}); err != nil {
					t.Fatalf("input %d does not validate: %v", i, err)
				}
			}
			got, err := MergeUpdates(inputs)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(got, v.Merged) {
				identical++
			} else if !sameClockTwice(t, inputs) {
				t.Errorf("%s: no struct at the same clock in two inputs, yet the bytes differ from Yjs's (%d vs %d bytes)", v.Note, len(got), len(v.Merged))
			}
			assertSameDocument(t, got, v.Merged)
		})
	}
	t.Logf("%d of %d merges byte-identical to Yjs's", identical, len(vectors))
}

// sameClockTwice reports whether two inputs carry a struct (not a Skip) of the same client
// at the same clock.
func sameClockTwice(t *testing.T, inputs [][]byte) bool {
	t.Helper()
	var m merger
	for i, u := range inputs {
		if err := m.scan(i, u); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[[2]uint64]int32{}
	for _, s := range m.structs {
		if s.kind() == refSkip {
			continue
		}
		k := [2]uint64{s.client, s.clock}
		if src, ok := seen[k]; ok && src != s.src {
			return true
		}
		seen[k] = s.src
	}
	return false
}

// TestMergeUpdatesIsAssociative merges the updates of a session in random groups, with
// random overlaps and orders, and checks every result against one merge of all of them
// and against y-crdt's merge.
func TestMergeUpdatesIsAssociative(t *testing.T) {
	var all [][]byte
	for _, v := range loadMergeVectors(t) {
		if v.Name == "session_all" {
			all = toUpdates(v.Inputs)
		}
	}
	if len(all) < 100 {
		t.Fatalf("session_all has %d updates", len(all))
	}
	whole, err := MergeUpdates(all)
	if err != nil {
		t.Fatal(err)
	}
	viaYCRDT, err := yref.Merge(all)
	if err != nil {
		t.Fatal(err)
	}
	assertSameDocument(t, whole, viaYCRDT)
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 40 {
		// Groups of random, overlapping ranges that together cover every update.
		var groups [][]byte
		for start := 0; start < len(all); {
			end := min(len(all), start+1+rng.IntN(40))
			from := max(0, start-rng.IntN(10)) // overlap with the previous group
			g, err := MergeUpdates(all[from:end])
			if err != nil {
				t.Fatal(err)
			}
			groups = append(groups, g)
			start = end
		}
		rng.Shuffle(len(groups), func(i, j int) { groups[i], groups[j] = groups[j], groups[i] })
		got, err := MergeUpdates(groups)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(fmt.Sprintf("round%d", round), func(t *testing.T) {
			assertSameDocument(t, got, whole)
		})
	}
}

// TestMergeUpdatesEdgeCases: no input, one input, inputs without structs.
func TestMergeUpdatesEdgeCases(t *testing.T) {
	if got, err := MergeUpdates(nil); err != nil || !bytes.Equal(got, []byte{0, 0}) {
		t.Fatalf("no input: %x, %v", got, err)
	}
	one := []byte{1, 1, 5, 0, 4, 1, 1, 't', 1, 'a', 0}
	if _, err := ValidateUpdate(one, Limits{}); err != nil {
		t.Fatal(err)
	}
	if got, err := MergeUpdates([][]byte{one}); err != nil || !bytes.Equal(got, one) {
		t.Fatalf("one input: %x, %v", got, err)
	}
	if got, err := MergeUpdates([][]byte{{0, 0}, {0, 0}}); err != nil || !bytes.Equal(got, []byte{0, 0}) {
		t.Fatalf("empty inputs: %x, %v", got, err)
	}
	deletesOnly := []byte{0, 1, 5, 1, 3, 2}
	if got, err := MergeUpdates([][]byte{deletesOnly, one, deletesOnly}); err != nil {
		t.Fatal(err)
	} else if want := []byte{1, 1, 5, 0, 4, 1, 1, 't', 1, 'a', 1, 5, 1, 3, 2}; !bytes.Equal(got, want) {
		t.Fatalf("got %x, want %x", got, want)
	}
	if _, err := MergeUpdates([][]byte{one, {1, 2}}); err == nil {
		t.Fatal("a truncated input merged without an error")
	}

	// 100,000 GC structs of one clock each: one struct to the merge, and one written.
	gcs := AppendVarUint(nil, 1)
	gcs = AppendVarUint(gcs, 100_000)
	gcs = append(gcs, 7, 0) // client 7, clock 0
	for range 100_000 {
		gcs = append(gcs, refGC, 1)
	}
	gcs = append(gcs, 0)
	if _, err := ValidateUpdate(gcs, Limits{}); err != nil {
		t.Fatal(err)
	}
	got, err := MergeUpdates([][]byte{gcs, one})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{2, 1, 7, 0, refGC}
	want = AppendVarUint(want, 100_000)
	want = append(want, one[1:len(one)-1]...) // the other client's section
	if want = append(want, 0); !bytes.Equal(got, want) {
		t.Fatalf("got %x, want %x", got, want)
	}
}

// BenchmarkMergeUpdates merges what a room's compaction merges: a snapshot and the 500
// updates that followed it (compaction_fan_in), and a whole session's updates
// (session_all), natively and, for the ratio, through y-crdt (the tree of merges that
// yref.Merge runs).
func BenchmarkMergeUpdates(b *testing.B) {
	for _, name := range []string{"compaction_fan_in", "session_all"} {
		var inputs [][]byte
		for _, v := range loadMergeVectors(b) {
			if v.Name == name {
				inputs = toUpdates(v.Inputs)
			}
		}
		for _, impl := range []struct {
			name  string
			merge func([][]byte) ([]byte, error)
		}{{"native", MergeUpdates}, {"y-crdt", yref.Merge}} {
			b.Run(name+"/"+impl.name, func(b *testing.B) {
				b.ReportAllocs()
				b.ReportMetric(float64(len(inputs)), "inputs")
				for b.Loop() {
					if _, err := impl.merge(inputs); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestSortMostlySorted checks the sort that MergeUpdates runs on its structs and deletes,
// on inputs like a compaction's (one long sorted run among short ones) and on random ones.
func TestSortMostlySorted(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 300 {
		n := rng.IntN(3000)
		s := make([]int, n)
		switch round % 3 {
		case 0: // random
			for i := range s {
				s[i] = rng.IntN(100)
			}
		default: // a long sorted run somewhere, random values around it
			runStart, runLen := rng.IntN(n+1), rng.IntN(n+1)
			for i := range s {
				s[i] = rng.IntN(1000)
			}
			if runStart+runLen > n {
				runLen = n - runStart
			}
			slices.Sort(s[runStart : runStart+runLen])
		}
		want := slices.Clone(s)
		slices.Sort(want)
		var spare []int
		got := sortMostlySorted(s, &spare, cmp.Compare[int])
		if !slices.Equal(got, want) {
			t.Fatalf("round %d (n=%d): not sorted", round, n)
		}
	}
}

// FuzzMergeUpdates: for any two updates that validate, MergeUpdates succeeds, its result
// validates, covers per client exactly the clocks from the lowest to the highest of the
// inputs (gaps become Skips), and carries the union of their deletes; CompactUpdates's
// result validates too, with the same ranges and deletes, and is no larger.
func FuzzMergeUpdates(f *testing.F) {
	seeds := updateSeeds(f)
	for i := range seeds {
		f.Add(seeds[i], seeds[(i+1)%len(seeds)])
	}
	for _, v := range loadMergeVectors(f) {
		if len(v.Inputs) >= 2 && len(v.Inputs[0])+len(v.Inputs[1]) < 4096 {
			f.Add([]byte(v.Inputs[0]), []byte(v.Inputs[1]))
		}
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		ai, err := ValidateUpdate(a, Limits{})
		if err != nil {
			return
		}
		bi, err := ValidateUpdate(b, Limits{})
		if err != nil {
			return
		}
		merged, err := MergeUpdates([][]byte{a, b})
		if err != nil {
			t.Fatalf("two valid updates do not merge: %v", err)
		}
		mi, err := ValidateUpdate(merged, Limits{})
		if err != nil {
			t.Fatalf("merged update does not validate: %v", err)
		}
		span := map[uint64]ClientRange{}
		for _, r := range append(slices.Clone(ai.Structs), bi.Structs...) {
			if s, ok := span[r.Client]; ok {
				r.Clock, r.End = min(r.Clock, s.Clock), max(r.End, s.End)
			}
			span[r.Client] = r
		}
		want := make([]ClientRange, 0, len(span))
		for _, r := range span {
			want = append(want, r)
		}
		if got, want := normalizeRanges(mi.Structs), normalizeRanges(want); !slices.Equal(got, want) {
			t.Fatalf("merged ranges %v, want %v", got, want)
		}
		if got, want := normalizeDeletes(mi.Deletes), normalizeDeletes(append(slices.Clone(ai.Deletes), bi.Deletes...)); !slices.Equal(got, want) {
			t.Fatalf("merged deletes %v, want %v", got, want)
		}
		compacted, err := CompactUpdates([][]byte{a, b})
		if err != nil {
			t.Fatalf("two valid updates do not compact: %v", err)
		}
		ci, err := ValidateUpdate(compacted, Limits{})
		if err != nil {
			t.Fatalf("compacted update does not validate: %v", err)
		}
		if len(compacted) > len(merged) {
			t.Fatalf("compacted %d bytes, merged %d", len(compacted), len(merged))
		}
		if !slices.Equal(normalizeRanges(ci.Structs), normalizeRanges(mi.Structs)) || !slices.Equal(normalizeDeletes(ci.Deletes), normalizeDeletes(mi.Deletes)) {
			t.Fatalf("compacted ranges or deletes differ from the merge's")
		}
	})
}

// TestCompactUpdates: for every vector, the compacted merge (deleted content dropped,
// items that continue one another joined) carries the clocks, deletes and visible document
// of the plain merge (as y-crdt integrates it), is never larger, and stays as it is when
// compacted again. Some vectors must actually shrink.
func TestCompactUpdates(t *testing.T) {
	shrunk := 0
	for _, v := range loadMergeVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			inputs := toUpdates(v.Inputs)
			plain, err := MergeUpdates(inputs)
			if err != nil {
				t.Fatal(err)
			}
			dropped, err := CompactUpdates(inputs)
			if err != nil {
				t.Fatal(err)
			}
			if len(dropped) > len(plain) {
				t.Fatalf("%d bytes, more than the plain merge's %d", len(dropped), len(plain))
			}
			if len(dropped) < len(plain) {
				shrunk++
			}
			assertSameVisibleDocument(t, dropped, plain)
			again, err := CompactUpdates([][]byte{dropped})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, dropped) {
				t.Fatalf("merging the result again changes it (%d bytes, then %d)", len(dropped), len(again))
			}
		})
	}
	t.Logf("%d vectors had deleted content dropped", shrunk)
	if shrunk < 10 {
		t.Fatalf("only %d vectors had deleted content dropped", shrunk)
	}
}

func clearContentKinds(v any) {
	switch v := v.(type) {
	case *ysafe.Type:
		v.Content = 0
		for _, e := range v.Entries {
			clearContentKinds(e)
		}
		for _, p := range v.Pieces {
			for _, x := range p.Values {
				clearContentKinds(x)
			}
		}
	case []any:
		for _, x := range v {
			clearContentKinds(x)
		}
	case map[string]any:
		for _, x := range v {
			clearContentKinds(x)
		}
	}
}
