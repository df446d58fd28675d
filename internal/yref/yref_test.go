package yref

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	y "github.com/skyterra/y-crdt"

	"github.com/caddy-wiredb/wiredb/internal/ysafe"
	"github.com/caddy-wiredb/wiredb/yproto"
)

// TestOnlyTestsImport holds the module to what the package documentation promises: no
// file but a _test.go file imports yref.
func TestOnlyTestsImport(t *testing.T) {
	const self = "github.com/caddy-wiredb/wiredb/internal/yref"
	fset := token.NewFileSet()
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != "../.." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == self {
				t.Errorf("%s imports %s, which is for tests only", path, self)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestEmptyUpdateRoundTrip(t *testing.T) {
	empty := []byte{0, 0}
	m, err := Merge([][]byte{empty, empty})
	if err != nil {
		t.Fatal(err)
	}
	sv, err := ysafe.StateVector(m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sv, []byte{0}) {
		t.Fatalf("state vector of empty doc = %x, want 00", sv)
	}
	if _, err := Diff(m, sv); err != nil {
		t.Fatal(err)
	}
}

// y-crdt panics on an empty byte slice (docs/y-crdt.md, "What crashes or hangs it"); the
// guard must turn that into an error instead of taking the process down.
func TestPanicBecomesError(t *testing.T) {
	_, err := Merge([][]byte{{}, {0, 0}})
	if !errors.Is(err, ysafe.ErrPanic) {
		t.Fatalf("Merge of an empty slice: err = %v, want ErrPanic", err)
	}
	var pe *ysafe.PanicError
	if !errors.As(err, &pe) || len(pe.Stack) == 0 {
		t.Fatalf("no stack in %v", err)
	}
}

// Merge folds many updates as a tree of y-crdt merges; the result must hold
// exactly what one flat merge holds: same text, same map, same state vector,
// with concurrent inserts and deletes from several clients.
func TestTreeMergeEqualsFlatMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	docs := make([]*y.Doc, 3)
	svs := make([][]byte, 3)
	for i := range docs {
		docs[i] = y.NewDoc(fmt.Sprintf("d%d", i), true, y.DefaultGCFilter, nil, false)
		svs[i] = y.EncodeStateVector(docs[i], nil, y.NewUpdateEncoderV1())
	}
	var updates [][]byte
	for step := range 1500 {
		i := rng.IntN(len(docs))
		d := docs[i]
		txt := d.GetText("t")
		switch n := txt.Length(); {
		case n > 4 && rng.IntN(4) == 0:
			txt.Delete(rng.IntN(n-2), 2)
		case rng.IntN(5) == 0:
			d.GetMap("m").(*y.YMap).Set(fmt.Sprintf("k%d", rng.IntN(20)), step)
		default:
			txt.Insert(rng.IntN(n+1), string(rune('a'+step%26)), nil)
		}
		u := y.EncodeStateAsUpdate(d, svs[i])
		svs[i] = y.EncodeStateVector(d, nil, y.NewUpdateEncoderV1())
		updates = append(updates, u)
		// Now and then two docs exchange everything, so later edits build
		// on each other's content (origins across clients).
		if rng.IntN(50) == 0 {
			j := rng.IntN(len(docs))
			y.ApplyUpdate(docs[j], y.EncodeStateAsUpdate(d, nil), nil)
			svs[j] = y.EncodeStateVector(docs[j], nil, y.NewUpdateEncoderV1())
		}
	}
	tree, err := Merge(updates)
	if err != nil {
		t.Fatal(err)
	}
	flat := y.MergeUpdates(updates, y.NewUpdateDecoderV1, y.NewUpdateEncoderV1, false)
	read := func(u []byte) (string, string, string) {
		d := y.NewDoc("r", true, y.DefaultGCFilter, nil, false)
		y.ApplyUpdate(d, u, nil)
		m, _ := json.Marshal(d.GetMap("m").(*y.YMap).ToJson())
		// The encoding orders clients as a Go map iterates: compare decoded.
		sv, err := yproto.ValidateStateVector(y.EncodeStateVector(d, nil, y.NewUpdateEncoderV1()))
		if err != nil {
			t.Fatal(err)
		}
		return d.GetText("t").ToString(), string(m), fmt.Sprint(sv)
	}
	tt, tm, tsv := read(tree)
	ft, fm, fsv := read(flat)
	if tt != ft || tm != fm || tsv != fsv {
		t.Fatalf("tree merge differs from flat merge:\ntext %q\nvs   %q\nmap %s vs %s\nsv %s vs %s", tt, ft, tm, fm, tsv, fsv)
	}
	if len(tt) < 100 {
		t.Fatalf("suspiciously little text: %q", tt)
	}
}
