package storage

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-wiredb/wiredb/yproto"
)

// textUpdate is a Yjs v1 update in which client inserts s at the start of
// the root text "t" at clock.
func textUpdate(client, clock uint64, s string) []byte {
	u := []byte{1, 1}
	u = yproto.AppendVarUint(u, client)
	u = yproto.AppendVarUint(u, clock)
	u = append(u, 4, 1) // ContentString, parent is a root type
	u = yproto.AppendVarString(u, "t")
	u = yproto.AppendVarString(u, s)
	return append(u, 0) // no deletes
}

func record(u []byte) []byte { return append(yproto.AppendVarUint(nil, uint64(len(u))), u...) }

func fileOf(records ...[]byte) []byte {
	b := []byte(Header)
	for _, r := range records {
		b = append(b, record(r)...)
	}
	return b
}

// openLog is Store.Open with its result taken apart.
func openLog(s *Store, key string) (*FileLog, [][]byte, Recovery, error) {
	o, err := s.Open(key)
	if err != nil {
		return nil, nil, o.Recovery, err
	}
	return o.Log.(*FileLog), o.Updates, o.Recovery, nil
}

func openStore(t *testing.T) *Store {
	t.Helper()
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAppendAndReopen(t *testing.T) {
	s := openStore(t)
	l, recs, _, err := openLog(s, "doc")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 0 {
		t.Fatalf("new log has %d records", len(recs))
	}
	var want [][]byte
	for i := range 50 {
		u := textUpdate(7, uint64(i), fmt.Sprint(i))
		want = append(want, u)
		if _, err := l.Append(u); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(s.Dir(), "doc.y"))
	if !bytes.Equal(data, fileOf(want...)) {
		t.Fatal("file bytes are not header + records")
	}
	l, recs, rec, err := openLog(s, "doc")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if rec.TruncatedBytes != 0 || len(recs) != len(want) {
		t.Fatalf("reopen: %d records, truncated %d", len(recs), rec.TruncatedBytes)
	}
	for i := range want {
		if !bytes.Equal(recs[i], want[i]) {
			t.Fatalf("record %d differs", i)
		}
	}
	if l.Stats().Records != 50 || l.Stats().Bytes != int64(len(data)) {
		t.Fatalf("Records %d Size %d", l.Stats().Records, l.Stats().Bytes)
	}
}

var update = flag.Bool("update", false, "rewrite the files in testdata/recovery")

// TestRecovery opens the files in testdata/recovery (go test -update
// regenerates them from this table); each case says what Open must do.
func TestRecovery(t *testing.T) {
	a, b, c := textUpdate(1, 0, "a"), textUpdate(1, 1, "b"), textUpdate(1, 2, "c")
	whole := fileOf(a, b, c)
	for _, tc := range []struct {
		name      string
		data      []byte
		records   int
		truncated int64
		wantErr   error
	}{
		{"empty file", nil, 0, 0, nil},
		{"header only", []byte(Header), 0, 0, nil},
		{"torn header", []byte(Header[:3]), 0, 3, nil},
		{"whole", whole, 3, 0, nil},
		{"torn length", append(fileOf(a, b), 0x80), 2, 1, nil},
		{"torn body", whole[:len(whole)-3], 2, int64(len(record(c))) - 3, nil},
		{"zeros after power loss", append(fileOf(a, b), make([]byte, 4096)...), 2, 4096, nil},
		{"foreign file", []byte("PK\x03\x04 not a WireDB file"), 0, 0, ErrNotWireDB},
		{"foreign short file", []byte("{}"), 0, 0, ErrNotWireDB},
		{"other version", append([]byte("0.0.2\x00"), record(a)...), 0, 0, ErrUnknownVersion},
		{"corrupt middle record", fileOf(a, []byte{1, 1, 1, 0, 99, 0}, c), 0, 0, ErrCorrupt},
		{"corrupt last whole record", fileOf(a, b, []byte{9, 9, 9}), 0, 0, ErrCorrupt},
		{"empty record in the middle", append(append(fileOf(a), 0), record(b)...), 0, 0, ErrCorrupt},
		{"record claims 2^40 bytes", append(fileOf(a), yproto.AppendVarUint(nil, 1<<40)...), 0, 0, ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fixture := filepath.Join("testdata", "recovery", strings.ReplaceAll(tc.name, " ", "-")+".y")
			if *update {
				if err := os.MkdirAll(filepath.Dir(fixture), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(fixture, tc.data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			data, err := os.ReadFile(fixture)
			if err != nil {
				t.Fatalf("%v (run go test -update to write the fixtures)", err)
			}
			if !bytes.Equal(data, tc.data) {
				t.Fatalf("%s differs from the table; run go test -update", fixture)
			}
			s := openStore(t)
			path, _ := s.Path("r")
			if tc.data != nil {
				if err := os.WriteFile(path, tc.data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			l, recs, rec, err := openLog(s, "r")
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), path) {
					t.Fatalf("error %q does not name the file", err)
				}
				after, _ := os.ReadFile(path)
				if !bytes.Equal(after, tc.data) {
					t.Fatal("a file that could not be read was modified")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if len(recs) != tc.records || rec.TruncatedBytes != tc.truncated {
				t.Fatalf("records %d truncated %d, want %d and %d", len(recs), rec.TruncatedBytes, tc.records, tc.truncated)
			}
			// The repaired file is whole again and takes appends.
			if _, err := l.Append(c); err != nil {
				t.Fatal(err)
			}
			l.Close()
			_, recs2, rec2, err := openLog(s, "r")
			if err != nil || rec2.TruncatedBytes != 0 || len(recs2) != tc.records+1 {
				t.Fatalf("after repair and append: %d records, truncated %d, err %v", len(recs2), rec2.TruncatedBytes, err)
			}
		})
	}
}

func TestCompact(t *testing.T) {
	s, l := openWithRecords(t, 10)
	merged := textUpdate(3, 0, "xxxxxxxxxx")
	if err := l.Checkpoint(merged, l.End()); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(textUpdate(3, 10, "y")); err != nil {
		t.Fatal(err)
	}
	l.Close()
	path, _ := s.Path("c")
	data, _ := os.ReadFile(path)
	if !bytes.Equal(data, fileOf(merged, textUpdate(3, 10, "y"))) {
		t.Fatalf("compacted file = %x", data)
	}
	left, _ := filepath.Glob(filepath.Join(s.Dir(), "*.tmp"))
	if len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}
}

func TestFileName(t *testing.T) {
	for key, want := range map[string]string{
		"notes":         "notes.y",
		"notes/42":      "notes%2F42.y",
		"a b":           "a%20b.y",
		"Ünï":           "%C3%9Cn%C3%AF.y",
		"dots.in.name_": "dots.in.name_.y",
		"~":             "%7E.y",
	} {
		if got, err := FileName(key); err != nil || got != want {
			t.Errorf("FileName(%q) = %q, %v; want %q", key, got, err, want)
		}
	}
	for _, bad := range []string{"", "..", "a/../b", ".", "a/./b", "nul\x00"} {
		if _, err := FileName(bad); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("FileName(%q) err = %v, want ErrInvalidKey", bad, err)
		}
	}
	long := strings.Repeat("/", 300)
	name, err := FileName(long)
	if err != nil || len(name) > 255 || !strings.Contains(name, "~") {
		t.Fatalf("FileName(300 slashes) = %q (%d bytes), %v", name, len(name), err)
	}
}

// FuzzFileName checks that no key escapes the directory and that distinct
// keys get distinct names.
func FuzzFileName(f *testing.F) {
	for _, s := range []string{"notes/42", "a", "%2F", "~", strings.Repeat("é", 200), "../x", "."} {
		f.Add(s, s+"x")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		na, errA := FileName(a)
		nb, errB := FileName(b)
		for _, n := range []string{na, nb} {
			if n == "" {
				continue
			}
			if strings.ContainsAny(n, "/\\\x00") || len(n) > 255 || !strings.HasSuffix(n, FileExt) {
				t.Fatalf("unsafe file name %q", n)
			}
			if filepath.Base(n) != n {
				t.Fatalf("name %q is not a single path element", n)
			}
		}
		if errA == nil && errB == nil && a != b && na == nb {
			t.Fatalf("keys %q and %q collide on %q", a, b, na)
		}
	})
}

// FuzzReadFile feeds arbitrary file contents to Open: it must return records
// or an error, never panic, and never modify a file it refuses.
func FuzzReadFile(f *testing.F) {
	a, b := textUpdate(1, 0, "a"), textUpdate(1, 1, "b")
	f.Add(fileOf(a, b))
	f.Add(fileOf(a)[:9])
	f.Add([]byte(Header))
	f.Add([]byte("0.0.2\x00"))
	f.Add(append(fileOf(a), 0xff, 0xff, 0xff, 0xff, 0x0f))
	dir := f.TempDir()
	s, err := OpenStore(dir)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path, _ := s.Path("fuzz")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		l, recs, _, err := openLog(s, "fuzz")
		if err != nil {
			after, _ := os.ReadFile(path)
			if !bytes.Equal(after, data) {
				t.Fatal("refused file was modified")
			}
			return
		}
		defer l.Close()
		for _, r := range recs {
			if _, err := yproto.ValidateUpdate(r, yproto.Limits{}); err != nil {
				t.Fatalf("Open returned an invalid record: %v", err)
			}
		}
	})
}

func TestOpenRemovesOnlyItsOwnCompactionLeftovers(t *testing.T) {
	// The leftovers of a crash are there when the store opens.
	dir := t.TempDir()
	path := filepath.Join(dir, "a.y.y")    // room "a.y"
	other := filepath.Join(dir, "a.y.x.y") // room "a.y.x": its temps start with "a.y." too
	mine := path + ".123456.tmp"
	theirs := other + ".42.tmp"
	unrelated := path + ".backup.tmp"
	for _, p := range []string{mine, theirs, unrelated} {
		if err := os.WriteFile(p, []byte(Header), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Path("a.y"); p != path {
		t.Fatalf("room a.y is at %s, want %s", p, path)
	}
	l, _, rec, err := openLog(s, "a.y")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if len(rec.RemovedTemps) != 1 || rec.RemovedTemps[0] != mine {
		t.Fatalf("RemovedTemps = %v, want [%s]", rec.RemovedTemps, mine)
	}
	for _, p := range []string{theirs, unrelated} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", filepath.Base(p), err)
		}
	}
}

// Appends go on while Sync runs, and Sync covers exactly what was appended
// before it started.
func TestSyncCoversEarlierAppendsWhileAppendsGoOn(t *testing.T) {
	s := openStore(t)
	l, _, _, err := openLog(s, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var wg sync.WaitGroup
	const writers, each = 4, 200
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := l.Append(textUpdate(uint64(10+w), uint64(i), "z")); err != nil {
					t.Error(err)
					return
				}
				if i%20 == 0 {
					if err := l.Sync(); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if n := l.Unsynced(); n == 0 {
		t.Log("every append happened to be covered by a Sync already")
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if n := l.Unsynced(); n != 0 {
		t.Fatalf("Unsynced after Sync = %d", n)
	}
	if got := l.Stats().Records; got != writers*each {
		t.Fatalf("Records = %d, want %d", got, writers*each)
	}
	l.Close()
	l2, records, _, err := openLog(s, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if len(records) != writers*each {
		t.Fatalf("reopened %d records, want %d", len(records), writers*each)
	}
}
