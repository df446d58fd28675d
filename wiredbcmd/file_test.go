package wiredbcmd

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-wiredb/wiredb/storage"
)

// readRoomFile must judge every file as storage.Store.Open does: the same records, the
// same torn bytes, the same refusals. The fixtures are storage's own.
func TestReadAgreesWithStorage(t *testing.T) {
	const dir = "../storage/testdata/recovery"
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 10 {
		t.Fatalf("only %d fixtures", len(entries))
	}
	for _, e := range entries {
		name := e.Name()
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			f, err := readRoomFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}

			store, err := storage.OpenStore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			key := strings.TrimSuffix(name, ".y")
			path, _ := store.Path(key)
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			l, records, rec, err := openRoom(store, key)
			if err != nil {
				for _, sentinel := range []error{storage.ErrNotWireDB, storage.ErrUnknownVersion, storage.ErrCorrupt} {
					if errors.Is(err, sentinel) != errors.Is(f.problem, sentinel) {
						t.Fatalf("storage: %v; wiredbcmd: %v", err, f.problem)
					}
				}
				if f.problem == nil {
					t.Fatalf("storage refuses (%v), wiredbcmd reads the file", err)
				}
				return
			}
			defer l.Close()
			if f.problem != nil {
				t.Fatalf("storage reads the file, wiredbcmd: %v", f.problem)
			}
			if len(records) != len(f.records) {
				t.Fatalf("storage reads %d records, wiredbcmd %d", len(records), len(f.records))
			}
			if rec.TruncatedBytes != f.tornBytes() {
				t.Fatalf("storage cuts %d bytes, wiredbcmd finds %d torn", rec.TruncatedBytes, f.tornBytes())
			}
			if len(data) == 0 && f.status() != "empty" || len(data) > 0 && f.status() == "empty" {
				t.Fatalf("status %s for %d bytes", f.status(), len(data))
			}
		})
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.y")
	if err := writeFileAtomic(path, []byte("one"), 0o600, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(path, []byte("two"), 0o600, false, nil); !errors.Is(err, errExists) {
		t.Fatalf("no-replace over an existing file: %v", err)
	}
	// A failing check before the rename leaves the file as it was and no temp file.
	veto := errors.New("changed meanwhile")
	if err := writeFileAtomic(path, []byte("three"), 0o600, true, func() error { return veto }); !errors.Is(err, veto) {
		t.Fatalf("err = %v", err)
	}
	if err := writeFileAtomic(path, []byte("four"), 0o640, true, nil); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	st, _ := os.Stat(path)
	if string(got) != "four" || st.Mode().Perm() != 0o640 {
		t.Fatalf("file %q mode %v", got, st.Mode())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
}
