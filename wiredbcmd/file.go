package wiredbcmd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/caddy-wiredb/wiredb/storage"
	"github.com/caddy-wiredb/wiredb/yproto"
)

// roomFile is a room file as read, without modifying it, by the same rules as
// storage.Store.Open: the header, then whole records each validated as a Yjs v1 update; a
// torn last record (a write a crash cut short) is noted, not cut; anything else that cannot
// be read is a problem.
type roomFile struct {
	path    string
	data    []byte
	mode    os.FileMode
	modTime time.Time

	// version is the header's version ("0.0.1"), when the header is WireDB's.
	version string
	// records are the whole, valid records in file order.
	records []storage.Record
	// tornAt is the offset of a torn tail (an unfinished last record, or a header cut
	// short), or -1.
	tornAt int64
	// problem says why the file cannot be read, or is nil. It wraps storage.ErrNotWireDB,
	// storage.ErrUnknownVersion or storage.ErrCorrupt.
	problem error
	// bad is the record that problem is about, or nil.
	bad *storage.CorruptRecordError
}

// status names the state of a file for reports.
func (f *roomFile) status() string {
	switch {
	case errors.Is(f.problem, storage.ErrNotWireDB):
		return "not_wiredb"
	case errors.Is(f.problem, storage.ErrUnknownVersion):
		return "unknown_version"
	case f.problem != nil:
		return "corrupt"
	case len(f.data) == 0:
		return "empty"
	case f.tornAt >= 0:
		return "torn"
	}
	return "ok"
}

// tornBytes is the size of the torn tail.
func (f *roomFile) tornBytes() int64 {
	if f.tornAt < 0 {
		return 0
	}
	return int64(len(f.data)) - f.tornAt
}

// tornError describes the torn tail as an error naming the file.
func (f *roomFile) tornError() error {
	if f.tornAt < int64(len(storage.Header)) {
		return fmt.Errorf("%s: torn header: the file holds %d bytes of the %d-byte header (a crash while it was created)",
			f.path, len(f.data), len(storage.Header))
	}
	return fmt.Errorf("%s: torn tail: %d bytes after offset %d are an unfinished record (a crash mid-write)",
		f.path, f.tornBytes(), f.tornAt)
}

func (f *roomFile) updates() [][]byte { return storage.Updates(f.records) }

// fileProblem is why a file cannot be read, naming it.
type fileProblem struct {
	path     string
	msg      string
	sentinel error
}

func (e *fileProblem) Error() string { return e.path + ": " + e.msg }
func (e *fileProblem) Unwrap() error { return e.sentinel }

// readRoomFile reads and checks the room file at path. It fails only when the file cannot
// be read at all; what is wrong inside it is in the result.
func readRoomFile(path string) (*roomFile, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	data, err := io.ReadAll(fd)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	f := &roomFile{path: path, data: data, mode: st.Mode().Perm(), modTime: st.ModTime(), tornAt: -1}
	f.parse()
	return f, nil
}

// parse reads f.data with storage's scanner, and words what is wrong for
// a person reading a report.
func (f *roomFile) parse() {
	scan := storage.ScanFile(f.data)
	f.records, f.tornAt = scan.Records, scan.TornAt
	var corrupt *storage.CorruptRecordError
	switch {
	case scan.Err == nil:
		f.version = scan.Version
	case errors.Is(scan.Err, storage.ErrUnknownVersion):
		f.problem = &fileProblem{f.path, fmt.Sprintf("unknown WireDB file version %q (this tool reads %q)",
			scan.Version, storage.Header[:len(storage.Header)-1]), storage.ErrUnknownVersion}
	case errors.As(scan.Err, &corrupt):
		f.version = scan.Version
		f.bad = corrupt
		f.problem = &fileProblem{f.path, fmt.Sprintf("corrupt record %d at offset %d: %s", corrupt.Index, corrupt.Offset, corrupt.Reason), storage.ErrCorrupt}
	default:
		f.problem = f.notWireDB()
	}
}

func (f *roomFile) notWireDB() error {
	head := f.data[:min(len(f.data), 8)]
	return &fileProblem{f.path, fmt.Sprintf("not a WireDB file: it starts with % x (%s), not %q",
		head, strconv.QuoteToASCII(string(head)), storage.Header), storage.ErrNotWireDB}
}

// encodeRoomFile returns a room file holding update as its one record (no record for the
// empty update).
func encodeRoomFile(update []byte) []byte {
	if update == nil || yproto.IsEmptyUpdate(update) {
		return storage.EncodeFile()
	}
	return storage.EncodeFile(update)
}
