package wiredbcmd

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddy-wiredb/wiredb/internal/yref"
	"github.com/caddy-wiredb/wiredb/storage"
	"github.com/caddy-wiredb/wiredb/yproto"
)

// caddyBin is Caddy with the wiredb command, built by TestMain from testdata/caddymain.
var caddyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wiredbcmd-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	caddyBin = filepath.Join(dir, "caddy")
	build := exec.Command("go", "build", "-o", caddyBin, "github.com/caddy-wiredb/wiredb/wiredbcmd/testdata/caddymain")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the test caddy: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// caddy runs the test binary in dir.
func caddy(t *testing.T, dir string, args ...string) result {
	t.Helper()
	cmd := exec.Command(caddyBin, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return r
}

func (r result) expect(t *testing.T, code int, stderrHas ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	for _, s := range stderrHas {
		if !strings.Contains(r.stderr, s) {
			t.Fatalf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}
}

// vectorUpdates returns the updates of a Yjs vector of internal/ydoc, in the order Yjs
// emitted them, and what Yjs renders for the document.
func vectorUpdates(t *testing.T, name string) ([][]byte, json.RawMessage) {
	t.Helper()
	data, err := os.ReadFile("../internal/ydoc/testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Vectors []struct {
			Name     string          `json:"name"`
			Updates  []string        `json:"updates"`
			Expected json.RawMessage `json:"expected"`
		} `json:"vectors"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	for _, v := range f.Vectors {
		if v.Name == name {
			var us [][]byte
			for _, h := range v.Updates {
				u, err := hex.DecodeString(h)
				if err != nil {
					t.Fatal(err)
				}
				us = append(us, u)
			}
			return us, v.Expected
		}
	}
	t.Fatalf("no vector %s", name)
	return nil, nil
}

// roomFile writes a room file for key in dir with storage itself, one record per update,
// and returns its name.
func writeRoom(t *testing.T, dir, key string, updates [][]byte) string {
	t.Helper()
	store, err := storage.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	l, _, _, err := openRoom(store, key)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range updates {
		if _, err := l.Append(u); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return filepath.Base(l.Name())
}

func recordOf(u []byte) []byte { return append(yproto.AppendVarUint(nil, uint64(len(u))), u...) }

func sameJSON(t *testing.T, a, b []byte) bool {
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

type fileState struct {
	data  []byte
	mtime time.Time
}

func stateOf(t *testing.T, path string) fileState {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fileState{data, st.ModTime()}
}

func (s fileState) unchanged(t *testing.T, path string, after string) {
	t.Helper()
	now := stateOf(t, path)
	if !bytes.Equal(now.data, s.data) || !now.mtime.Equal(s.mtime) {
		t.Fatalf("%s changed by %s", path, after)
	}
}

func onlyFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, " ") != strings.Join(names, " ") {
		t.Fatalf("files in %s: %v, want %v", dir, got, names)
	}
}

func TestInspectGood(t *testing.T) {
	dir := t.TempDir()
	updates, _ := vectorUpdates(t, "multi_root")
	name := writeRoom(t, dir, "notes/42", updates)
	if name != "notes%2F42.y" {
		t.Fatalf("file name %s", name)
	}

	r := caddy(t, dir, "wiredb", "inspect", name)
	r.expect(t, 0)
	for _, want := range []string{
		"format     WireDB 0.0.1",
		fmt.Sprintf("status     OK: %d whole records", len(updates)),
		"client 101: clock 20",
		"roots      body (XmlFragment), list (Array), meta (Map), title (Text)",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, r.stdout)
		}
	}

	r = caddy(t, dir, "wiredb", "inspect", "--json", "--records", name)
	r.expect(t, 0)
	var rep inspectReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("%v in %s", err, r.stdout)
	}
	merged, err := yref.Merge(updates)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, u := range updates {
		total += len(u)
	}
	if rep.Status != "ok" || rep.Records != len(updates) || rep.RecordBytes != int64(total) ||
		rep.Document == nil || rep.Document.MergedBytes != len(merged) || len(rep.RecordList) != len(updates) {
		t.Fatalf("report %+v", rep)
	}
	if got := rep.Document.StateVector; len(got) != 1 || got[0] != (clockEntry{101, 20}) {
		t.Fatalf("state vector %+v", got)
	}
	if rep.RecordList[0].Offset != int64(len(storage.Header)) {
		t.Fatalf("first record at %d", rep.RecordList[0].Offset)
	}
}

// A concurrent session with deletes: clients, state vector and delete set as Yjs has them.
func TestInspectClientsAndDeletes(t *testing.T) {
	dir := t.TempDir()
	updates, _ := vectorUpdates(t, "concurrent")
	name := writeRoom(t, dir, "c", updates)
	r := caddy(t, dir, "wiredb", "inspect", "--json", name)
	r.expect(t, 0)
	var rep inspectReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	merged, _ := yref.Merge(updates)
	info, err := yproto.ValidateUpdate(merged, yproto.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Document.Clients != 2 || len(rep.Document.StateVector) != 2 || rep.Document.DeleteRanges != len(info.Deletes) || rep.Document.DeletedItems == 0 {
		t.Fatalf("document %+v", rep.Document)
	}
}

// fixtures writes the bad files every command is run on.
func fixtures(t *testing.T, dir string) map[string]string {
	t.Helper()
	updates, _ := vectorUpdates(t, "text_plain")
	good := []byte(storage.Header)
	for _, u := range updates {
		good = append(good, recordOf(u)...)
	}
	corrupt := []byte(storage.Header)
	for i, u := range updates {
		if i == 2 {
			u = append([]byte{}, u...)
			u[0] = 0x7f // a client count the rest cannot hold
		}
		corrupt = append(corrupt, recordOf(u)...)
	}
	files := map[string][]byte{
		"torn.y":         append(append([]byte{}, good...), recordOf(updates[0])[:5]...),
		"torn-header.y":  []byte("0.0"),
		"corrupt.y":      corrupt,
		"huge-length.y":  append(append([]byte{}, good...), 0x80, 0x80, 0x80, 0x80, 0x80, 0x20, 1, 2, 3),
		"foreign.y":      []byte("SQLite format 3\x00 and so on"),
		"version.y":      append([]byte("0.0.2\x00"), good[len(storage.Header):]...),
		"empty-record.y": append(append(append([]byte{}, good[:len(storage.Header)]...), 0, 1), good[len(storage.Header):]...),
	}
	names := map[string]string{}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		names[name] = name
	}
	return names
}

// No command modifies a file it cannot read; each names the file and the problem.
func TestBadFilesAreNeverModified(t *testing.T) {
	dir := t.TempDir()
	fixtures(t, dir)
	cases := []struct {
		file    string
		problem string // in every command's error
		inspect int    // inspect's exit status
	}{
		{"torn.y", "torn tail: 5 bytes after offset", exitTorn},
		{"torn-header.y", "torn header", exitTorn},
		{"corrupt.y", "corrupt record 2 at offset", exitFailed},
		{"huge-length.y", "record claims 1099511627776 bytes", exitFailed},
		{"foreign.y", "not a WireDB file: it starts with 53 51 4c 69", exitFailed},
		{"version.y", `unknown WireDB file version "0.0.2"`, exitFailed},
		{"empty-record.y", "corrupt record 0 at offset 6: empty record", exitFailed},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			path := filepath.Join(dir, c.file)
			before := stateOf(t, path)
			time.Sleep(10 * time.Millisecond) // so that a rewrite would show in the mtime

			r := caddy(t, dir, "wiredb", "inspect", c.file)
			r.expect(t, c.inspect)
			if !strings.Contains(r.stdout, c.problem) && !strings.Contains(r.stdout, "TORN") {
				t.Errorf("inspect output lacks %q:\n%s", c.problem, r.stdout)
			}
			if c.inspect == exitFailed {
				r.expect(t, exitFailed, c.file+": ", c.problem)
			}
			r = caddy(t, dir, "wiredb", "inspect", "--json", c.file)
			var rep inspectReport
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || !strings.Contains(rep.Error, c.problem) {
				t.Errorf("inspect --json: %v, error %q", err, rep.Error)
			}

			r = caddy(t, dir, "wiredb", "compact", c.file)
			r.expect(t, exitFailed, c.file+": ", c.problem, "the file is unchanged")
			if c.inspect == exitTorn && !strings.Contains(r.stderr, "--repair") {
				t.Errorf("compact of a torn file does not mention --repair: %s", r.stderr)
			}
			r = caddy(t, dir, "wiredb", "compact", "--dry-run", "--repair", c.file)
			if c.inspect == exitFailed {
				r.expect(t, exitFailed, c.problem)
			}
			if c.inspect == exitFailed {
				caddy(t, dir, "wiredb", "compact", "--repair", c.file).expect(t, exitFailed, c.problem)
				caddy(t, dir, "wiredb", "export", "--json", c.file).expect(t, exitFailed, c.problem)
				caddy(t, dir, "wiredb", "export", "--update", "-o", "out.bin", c.file).expect(t, exitFailed, c.problem)
			} else {
				// export leaves a torn tail out, with a warning.
				caddy(t, dir, "wiredb", "export", "--json", c.file).expect(t, exitOK, "warning: ", c.problem)
			}
			before.unchanged(t, path, "the commands")
		})
	}
	onlyFiles(t, dir, "corrupt.y", "empty-record.y", "foreign.y", "huge-length.y", "torn-header.y", "torn.y", "version.y")
}

func TestCompact(t *testing.T) {
	dir := t.TempDir()
	updates, _ := vectorUpdates(t, "xml")
	name := writeRoom(t, dir, "doc", updates)
	path := filepath.Join(dir, name)
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	before := caddy(t, dir, "wiredb", "export", "--json", name)
	before.expect(t, 0)
	size := stateOf(t, path).data

	caddy(t, dir, "wiredb", "compact", "--dry-run", name).expect(t, 0)
	if !bytes.Equal(stateOf(t, path).data, size) {
		t.Fatal("--dry-run wrote")
	}

	r := caddy(t, dir, "wiredb", "compact", name)
	r.expect(t, 0)
	want := fmt.Sprintf("compacted %s: %d records, %d bytes -> 1 record,", name, len(updates), len(size))
	if !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, "verified") {
		t.Fatalf("compact output:\n%s\nwant %q", r.stdout, want)
	}
	after := caddy(t, dir, "wiredb", "export", "--json", name)
	if !sameJSON(t, []byte(before.stdout), []byte(after.stdout)) {
		t.Fatalf("content changed:\n%s\n%s", before.stdout, after.stdout)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600 kept", st.Mode())
	}
	onlyFiles(t, dir, name)

	// The server opens it: one record, the merged update.
	store, _ := storage.OpenStore(dir)
	l, recs, rec, err := openRoom(store, "doc")
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	merged, _ := yref.Merge(updates)
	if len(recs) != 1 || rec.TruncatedBytes != 0 || !bytes.Equal(recs[0], merged) {
		t.Fatalf("after compaction: %d records", len(recs))
	}

	r = caddy(t, dir, "wiredb", "compact", name)
	r.expect(t, 0)
	if !strings.Contains(r.stdout, "already compact") {
		t.Fatalf("second compaction: %s", r.stdout)
	}
}

func TestCompactRepair(t *testing.T) {
	dir := t.TempDir()
	updates, expected := vectorUpdates(t, "text_plain")
	name := writeRoom(t, dir, "doc", updates[:len(updates)-1])
	path := filepath.Join(dir, name)
	// A crash in the middle of writing the last record.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	last := recordOf(updates[len(updates)-1])
	f.Write(last[:len(last)/2])
	f.Close()

	caddy(t, dir, "wiredb", "compact", name).expect(t, exitFailed, "--repair")
	r := caddy(t, dir, "wiredb", "compact", "--repair", name)
	r.expect(t, 0)
	if !strings.Contains(r.stdout, fmt.Sprintf("cut a torn tail of %d bytes", len(last)/2)) {
		t.Fatalf("output: %s", r.stdout)
	}
	caddy(t, dir, "wiredb", "inspect", name).expect(t, 0)
	// What is left is the document without the last update.
	r = caddy(t, dir, "wiredb", "export", "--json", name)
	r.expect(t, 0)
	if sameJSON(t, []byte(r.stdout), expected) {
		t.Fatal("the torn update survived")
	}
	if !strings.Contains(r.stdout, `"type": "Text"`) {
		t.Fatalf("export: %s", r.stdout)
	}
}

func TestExportMatchesYjs(t *testing.T) {
	for _, v := range []string{"text_rich", "map", "array", "xml", "multi_root", "concurrent"} {
		t.Run(v, func(t *testing.T) {
			dir := t.TempDir()
			updates, expected := vectorUpdates(t, v)
			name := writeRoom(t, dir, "r", updates)
			r := caddy(t, dir, "wiredb", "export", "--json", name)
			r.expect(t, 0)
			if !sameJSON(t, []byte(r.stdout), expected) {
				t.Fatalf("export:\n%s\nYjs:\n%s", r.stdout, expected)
			}
		})
	}
}

// export --update writes a file that import turns back into a room with the same JSON;
// import of export --json does too.
func TestExportImportRoundTrip(t *testing.T) {
	dir := t.TempDir()
	updates, _ := vectorUpdates(t, "xml")
	name := writeRoom(t, dir, "doc", updates)
	orig := caddy(t, dir, "wiredb", "export", "--json", name)
	orig.expect(t, 0)

	caddy(t, dir, "wiredb", "export", "--update", "-o", "doc.bin", name).expect(t, 0)
	merged, _ := yref.Merge(updates)
	if bin, _ := os.ReadFile(filepath.Join(dir, "doc.bin")); !bytes.Equal(bin, merged) {
		t.Fatal("export --update is not the merged update")
	}
	caddy(t, dir, "wiredb", "export", "--update", "-o", "doc.bin", name).expect(t, exitFailed, "exists; use --force")
	caddy(t, dir, "wiredb", "export", "--update", "-o", "doc.bin", "--force", name).expect(t, 0)
	caddy(t, dir, "wiredb", "export", "--update", "-o", name, "--force", name).expect(t, exitFailed, "the room file itself")

	r := caddy(t, dir, "wiredb", "import", "doc.bin", "fromupdate.y")
	r.expect(t, 0)
	if !strings.Contains(r.stdout, "roots: prose (XmlFragment)") {
		t.Fatalf("import output: %s", r.stdout)
	}
	again := caddy(t, dir, "wiredb", "export", "--json", "fromupdate.y")
	if orig.stdout != again.stdout {
		t.Fatalf("round trip through export --update/import:\n%s\n%s", orig.stdout, again.stdout)
	}

	if err := os.WriteFile(filepath.Join(dir, "doc.json"), []byte(orig.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	caddy(t, dir, "wiredb", "import", "doc.json", "fromjson.y").expect(t, 0)
	again = caddy(t, dir, "wiredb", "export", "--json", "fromjson.y")
	if !sameJSON(t, []byte(orig.stdout), []byte(again.stdout)) {
		t.Fatalf("round trip through export --json/import:\n%s\n%s", orig.stdout, again.stdout)
	}

	// The server opens imported files.
	store, _ := storage.OpenStore(dir)
	for _, key := range []string{"fromupdate", "fromjson"} {
		l, recs, _, err := openRoom(store, key)
		if err != nil || len(recs) != 1 {
			t.Fatalf("%s: %d records, %v", key, len(recs), err)
		}
		l.Close()
	}
}

func TestImportRefuses(t *testing.T) {
	dir := t.TempDir()
	updates, _ := vectorUpdates(t, "text_plain")
	name := writeRoom(t, dir, "doc", updates)
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("bad.bin", []byte{1, 2, 3})
	write("part.bin", updates[1]) // starts after clock 0
	write("bad.json", []byte(`{"t": {"type": "Text", "value": "x", "delta": [{"insert": "y"}]}}`))
	write("u.bin", updates[0])

	caddy(t, dir, "wiredb", "import", "bad.bin", "out.y").expect(t, exitFailed, "bad.bin: not a valid Yjs v1 update")
	caddy(t, dir, "wiredb", "import", "part.bin", "out.y").expect(t, exitFailed, "part.bin: the update depends on content it does not hold")
	caddy(t, dir, "wiredb", "import", "bad.json", "out.y").expect(t, exitFailed, "bad.json: ", "not the text of its delta")
	caddy(t, dir, "wiredb", "import", name, "out.y").expect(t, exitFailed, "is a WireDB room file")
	caddy(t, dir, "wiredb", "import", "missing.bin", "out.y").expect(t, exitFailed, "missing.bin")
	onlyFiles(t, dir, "bad.bin", "bad.json", name, "part.bin", "u.bin")

	// An existing file is only replaced with --force.
	before := stateOf(t, filepath.Join(dir, name))
	time.Sleep(10 * time.Millisecond)
	caddy(t, dir, "wiredb", "import", "u.bin", name).expect(t, exitFailed, "exists; use --force")
	before.unchanged(t, filepath.Join(dir, name), "import without --force")
	caddy(t, dir, "wiredb", "import", "--force", "u.bin", name).expect(t, 0)
	caddy(t, dir, "wiredb", "inspect", name).expect(t, 0)
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	caddy(t, dir, "wiredb", "inspect").expect(t, exitFailed, "accepts 1 arg")
	caddy(t, dir, "wiredb", "export", "x.y").expect(t, exitFailed, "exactly one of --json and --update")
	caddy(t, dir, "wiredb", "inspect", "nope.y").expect(t, exitFailed, "nope.y")
	r := caddy(t, dir, "wiredb", "--help")
	r.expect(t, 0)
	for _, sub := range []string{"inspect", "compact", "export", "import"} {
		if !strings.Contains(r.stdout, sub) {
			t.Errorf("help lacks %s", sub)
		}
	}
}

// openRoom is Store.Open with its result taken apart.
func openRoom(s *storage.Store, key string) (storage.Log, [][]byte, storage.Recovery, error) {
	o, err := s.Open(key)
	return o.Log, o.Updates, o.Recovery, err
}
