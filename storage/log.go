package storage

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/caddy-wiredb/wiredb/yproto"
)

// Header starts every file: WireDB's format version and a NUL.
const Header = "0.0.1\x00"

// maxRecordSize bounds a record a file may claim. A length beyond it is not a
// record WireDB or this server wrote.
const maxRecordSize = 1 << 31

var (
	// ErrNotWireDB is returned when a file does not start with a WireDB header.
	ErrNotWireDB = errors.New("storage: not a WireDB update file")
	// ErrUnknownVersion is returned for a WireDB header of another version.
	ErrUnknownVersion = errors.New("storage: unknown WireDB file version")
	// ErrCorrupt is returned when a whole record in the file cannot be read as
	// a Yjs update. The file is left untouched.
	ErrCorrupt = errors.New("storage: corrupt record")
	// ErrClosed is returned by the methods of a closed Log.
	ErrClosed = errors.New("storage: log closed")
	// ErrStaleMark is returned by Compact when the file was replaced (by
	// another compaction) after its Mark was taken. Nothing was changed.
	ErrStaleMark = errors.New("storage: compaction mark is stale")
)

// Store is a directory of room files. It is safe for concurrent use; callers
// must not open two Logs for the same key at once (roomhub guarantees this).
type Store struct {
	dir    string
	fsyncs atomic.Uint64

	// leftovers are the temp files of interrupted compactions found when
	// the store opened, by room file name; Open removes a room's. (Listing
	// the directory on every room load would cost O(rooms) each time, and a
	// running server removes the temp files of its own failed compactions.)
	leftoversMu sync.Mutex
	leftovers   map[string][]string
}

// Fsyncs is the number of fsyncs the store's logs made for appended
// records (not counting compactions): with group commit, fewer than the
// records appended.
func (s *Store) Fsyncs() uint64 { return s.fsyncs.Load() }

// OpenStore creates dir if needed and returns a Store for it.
func OpenStore(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("resolving data directory: %w", err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	return &Store{dir: abs, leftovers: findCompactionLeftovers(abs)}, nil
}

// Dir is the absolute path of the store's directory.
func (s *Store) Dir() string { return s.dir }

// Path returns the file path of a room key.
func (s *Store) Path(key string) (string, error) {
	name, err := FileName(key)
	if err != nil {
		return "", err
	}
	return filepath.Join(s.dir, name), nil
}

// Recovery describes what Open had to repair.
type Recovery struct {
	// TruncatedBytes is the size of a torn last record that was cut off.
	TruncatedBytes int64
	// RemovedTemps are the temporary files of a compaction that a crash
	// interrupted before its rename (found when the store opened); the room
	// file itself is whole.
	RemovedTemps []string
}

// findCompactionLeftovers lists dir's compaction temp files by the room
// file they belong to: <name>.<digits>.tmp, as Compact names them, for a
// room file <name> (ending in .y). The digits test keeps the temp files of
// room "a.y.x" (file a.y.x.y) apart from those of room "a" (file a.y).
func findCompactionLeftovers(dir string) map[string][]string {
	entries, _ := os.ReadDir(dir)
	found := make(map[string][]string)
	for _, e := range entries {
		rest, ok := strings.CutSuffix(e.Name(), ".tmp")
		if !ok {
			continue
		}
		i := strings.LastIndexByte(rest, '.')
		if i < 0 {
			continue
		}
		base, digits := rest[:i], rest[i+1:]
		if digits == "" || strings.Trim(digits, "0123456789") != "" || !strings.HasSuffix(base, ".y") {
			continue
		}
		found[base] = append(found[base], filepath.Join(dir, e.Name()))
	}
	return found
}

// removeCompactionLeftovers deletes the compaction temp files of the room
// file at path that were there when the store opened.
func (s *Store) removeCompactionLeftovers(path string) []string {
	s.leftoversMu.Lock()
	temps := s.leftovers[filepath.Base(path)]
	delete(s.leftovers, filepath.Base(path))
	s.leftoversMu.Unlock()
	var removed []string
	for _, tmp := range temps {
		if os.Remove(tmp) == nil {
			removed = append(removed, tmp)
		}
	}
	return removed
}

// Log is one room's update file, open for appending. Its methods are safe
// for concurrent use.
type Log struct {
	path   string
	fsyncs *atomic.Uint64 // the store's count

	// syncMu serialises the operations that fsync or replace f (Sync,
	// Compact, Close), so that Sync can fsync without holding mu: appends go
	// on while an fsync runs, which is what lets one fsync cover many
	// appends (group commit).
	syncMu sync.Mutex

	mu       sync.Mutex
	f        *os.File
	size     int64  // bytes known to be whole records (plus header)
	records  int    // records in the file
	appended uint64 // records appended since Open, ever
	synced   uint64 // appended records known to be on stable storage
	err      error  // sticky: a failed write that could not be rolled back
	gen      uint64 // which file f is: incremented each time Compact replaces it

	// onlyRecord is yproto's parse of the file's record when Open found
	// exactly one (a compacted file); see TakeOnlyRecordInfo.
	onlyRecord *yproto.UpdateInfo
}

// TakeOnlyRecordInfo returns, once, yproto's parse of the file's record if
// Open found exactly one (as in a compacted file), so that a caller needing
// it (for the state vector, say) does not parse the record again.
func (l *Log) TakeOnlyRecordInfo() (yproto.UpdateInfo, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	info := l.onlyRecord
	l.onlyRecord = nil
	if info == nil {
		return yproto.UpdateInfo{}, false
	}
	return *info, true
}

// Mark is a point in a Log: the records appended before it. Compact takes
// one, so that a compaction can be prepared while appends go on.
type Mark struct {
	gen     uint64
	size    int64
	records int
}

// Mark returns the log's current end.
func (l *Log) Mark() Mark {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Mark{gen: l.gen, size: l.size, records: l.records}
}

// Open opens (creating if needed) the log of key and reads every record in
// it. A torn last record is cut off and reported in Recovery; any other
// damage returns an error wrapping ErrNotWireDB, ErrUnknownVersion or
// ErrCorrupt, and the file is not modified.
func (s *Store) Open(key string) (*Log, [][]byte, Recovery, error) {
	var rec Recovery
	path, err := s.Path(key)
	if err != nil {
		return nil, nil, rec, err
	}
	rec.RemovedTemps = s.removeCompactionLeftovers(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, rec, fmt.Errorf("opening %s: %w", path, err)
	}
	l := &Log{path: path, f: f, fsyncs: &s.fsyncs}
	records, last, good, total, err := readFile(f)
	if err != nil {
		f.Close()
		return nil, nil, rec, fmt.Errorf("reading %s: %w", path, err)
	}
	switch {
	case total == 0:
		// New file: write the header and make its directory entry durable.
		if _, err := f.Write([]byte(Header)); err != nil {
			f.Close()
			return nil, nil, rec, fmt.Errorf("writing header of %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, nil, rec, fmt.Errorf("syncing %s: %w", path, err)
		}
		if err := SyncDir(s.dir); err != nil {
			f.Close()
			return nil, nil, rec, err
		}
		good = int64(len(Header))
	case good < total:
		// A torn tail: the process died in the middle of a write(2).
		rec.TruncatedBytes = total - good
		if good < int64(len(Header)) {
			good = 0 // even the header is torn: start it again
		}
		if err := f.Truncate(good); err != nil {
			f.Close()
			return nil, nil, rec, fmt.Errorf("cutting torn tail of %s: %w", path, err)
		}
		if good == 0 {
			if _, err := f.WriteAt([]byte(Header), 0); err != nil {
				f.Close()
				return nil, nil, rec, fmt.Errorf("rewriting header of %s: %w", path, err)
			}
			good = int64(len(Header))
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, nil, rec, fmt.Errorf("syncing %s: %w", path, err)
		}
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, nil, rec, err
	}
	l.size = good
	l.records = len(records)
	if len(records) == 1 {
		l.onlyRecord = &last
	}
	return l, records, rec, nil
}

// readFile parses a whole file. last is yproto's parse of the last record;
// good is the offset after the last whole record; total is the file size. A
// file shorter than the header whose bytes are a prefix of it counts as a
// torn header (good = 0).
func readFile(f *os.File) (records [][]byte, last yproto.UpdateInfo, good, total int64, err error) {
	data, err := readAll(f)
	if err != nil {
		return nil, last, 0, 0, err
	}
	total = int64(len(data))
	if total == 0 {
		return nil, last, 0, 0, nil
	}
	if len(data) < len(Header) {
		if bytes.HasPrefix([]byte(Header), data) {
			return nil, last, 0, total, nil
		}
		return nil, last, 0, 0, ErrNotWireDB
	}
	if err := checkHeader(data[:len(Header)]); err != nil {
		return nil, last, 0, 0, err
	}
	off := len(Header)
	for off < len(data) {
		n, w, err := yproto.ReadVarUint(data[off:])
		if err != nil {
			// A length cut off by the end of the file is a torn write.
			return records, last, int64(off), total, nil
		}
		if n > maxRecordSize {
			return nil, last, 0, 0, fmt.Errorf("%w at offset %d: record claims %d bytes", ErrCorrupt, off, n)
		}
		if n == 0 {
			// Zero bytes to the end are what a power loss can leave of an
			// unfinished block; a zero-length record anywhere else is not ours.
			if allZero(data[off:]) {
				return records, last, int64(off), total, nil
			}
			return nil, last, 0, 0, fmt.Errorf("%w at offset %d: empty record", ErrCorrupt, off)
		}
		end := off + w + int(n)
		if end > len(data) {
			return records, last, int64(off), total, nil
		}
		u := data[off+w : end]
		info, err := yproto.ValidateUpdate(u, yproto.Limits{})
		if err != nil {
			return nil, last, 0, 0, fmt.Errorf("%w at offset %d: %w", ErrCorrupt, off, err)
		}
		records = append(records, u)
		last = info
		off = end
	}
	return records, last, int64(off), total, nil
}

// readAll reads f to its end into one buffer of its size (io.ReadAll grows
// a buffer step by step, copying a big room's file several times).
func readAll(f *os.File) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 0, fi.Size()+1) // +1: EOF is seen without growing
	for {
		if len(buf) == cap(buf) { // the file grew meanwhile
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func checkHeader(h []byte) error {
	if string(h) == Header {
		return nil
	}
	// "x.y.z\0": ours, but another version.
	if h[len(h)-1] == 0 && bytes.Count(h, []byte{'.'}) == 2 {
		return fmt.Errorf("%w %q", ErrUnknownVersion, h[:len(h)-1])
	}
	return ErrNotWireDB
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Path is the file's path.
func (l *Log) Path() string { return l.path }

// Size is the file's size in bytes.
func (l *Log) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size
}

// Records is the number of records in the file.
func (l *Log) Records() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.records
}

// Append writes one record with a single write(2). When it returns nil the
// record is in the kernel's page cache: it survives a crash of the process,
// and a power loss only after Sync. A failed write is rolled back so that the
// file never holds a partial record in its middle.
func (l *Log) Append(update []byte) error {
	buf := make([]byte, 0, len(update)+10)
	buf = yproto.AppendVarUint(buf, uint64(len(update)))
	buf = append(buf, update...)

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return ErrClosed
	}
	if l.err != nil {
		return l.err
	}
	n, err := l.f.Write(buf)
	if err != nil {
		if n > 0 {
			if terr := l.f.Truncate(l.size); terr != nil {
				l.err = fmt.Errorf("appending to %s: %w (and rolling back: %v)", l.path, err, terr)
				return l.err
			}
			if _, serr := l.f.Seek(l.size, io.SeekStart); serr != nil {
				l.err = fmt.Errorf("appending to %s: %w (and seeking back: %v)", l.path, err, serr)
				return l.err
			}
		}
		return fmt.Errorf("appending to %s: %w", l.path, err)
	}
	l.size += int64(n)
	l.records++
	l.appended++
	return nil
}

// Sync flushes to stable storage (fsync) every record appended before the
// call. Appends made while it runs wait for the next Sync, without blocking
// on this one. It is a no-op when nothing was appended since the last Sync.
func (l *Log) Sync() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	f, target := l.f, l.appended
	upToDate := l.synced == target
	l.mu.Unlock()
	if f == nil {
		return ErrClosed
	}
	if upToDate {
		return nil
	}
	// f stays open: Compact and Close, the only ones that replace or close
	// it, wait for syncMu.
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", l.path, err)
	}
	l.fsyncs.Add(1)
	l.mu.Lock()
	l.synced = target
	l.mu.Unlock()
	return nil
}

// Unsynced is the number of appended records not yet known to be on stable
// storage.
func (l *Log) Unsynced() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int(l.appended - l.synced)
}

// Compact replaces the file with the header, one record holding merged, and
// the records appended after m, which were taken with Mark; merged must
// contain everything the log held at m. The new file is written beside the
// old one, fsynced, renamed over it and the directory fsynced, so a crash at
// any point leaves either the old or the new file, whole.
//
// Most of the work happens while appends (and Syncs) go on: the new file is
// written and fsynced with no lock held, and only the records appended
// meanwhile (usually few) are copied, and fsynced, while appends wait.
// It returns ErrStaleMark, with nothing changed, if another compaction
// replaced the file after m.
func (l *Log) Compact(merged []byte, m Mark) error {
	l.mu.Lock()
	f, gen, copied := l.f, l.gen, l.size
	l.mu.Unlock()
	if f == nil {
		return ErrClosed
	}
	if gen != m.gen {
		return ErrStaleMark
	}
	dir := filepath.Dir(l.path)
	tmp, err := os.CreateTemp(dir, filepath.Base(l.path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("compacting %s: %w", l.path, err)
	}
	tmpName := tmp.Name()
	fail := func(err error) error {
		tmp.Close()
		os.Remove(tmpName)
		if errors.Is(err, ErrClosed) || errors.Is(err, ErrStaleMark) {
			return err
		}
		return fmt.Errorf("compacting %s: %w", l.path, err)
	}
	buf := make([]byte, 0, len(Header)+len(merged)+10)
	buf = append(buf, Header...)
	buf = yproto.AppendVarUint(buf, uint64(len(merged)))
	buf = append(buf, merged...)
	if _, err := tmp.Write(buf); err != nil {
		return fail(err)
	}
	size := int64(len(buf))
	// Records appended after m so far: whole records (l.size only counts
	// those), read with pread while appends go on at the end of f.
	n, err := copyRange(tmp, f, m.size, copied)
	size += n
	if err != nil {
		return fail(err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}

	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return fail(ErrClosed)
	}
	if l.gen != gen {
		return fail(ErrStaleMark)
	}
	if l.size > copied {
		// Appended while the new file was being written.
		n, err := copyRange(tmp, l.f, copied, l.size)
		size += n
		if err != nil {
			return fail(err)
		}
		if err := tmp.Sync(); err != nil {
			return fail(err)
		}
	}
	if err := os.Rename(tmpName, l.path); err != nil {
		return fail(err)
	}
	records := 1 + l.records - m.records
	if err := SyncDir(dir); err != nil {
		// The rename happened; the new file is the log from now on.
		l.swap(tmp, size, records)
		return err
	}
	l.swap(tmp, size, records)
	return nil
}

// copyRange appends the bytes [from, to) of src to dst.
func copyRange(dst io.Writer, src *os.File, from, to int64) (int64, error) {
	if to <= from {
		return 0, nil
	}
	return io.Copy(dst, io.NewSectionReader(src, from, to-from))
}

func (l *Log) swap(f *os.File, size int64, records int) {
	l.f.Close()
	l.f = f
	l.gen++
	l.size = size
	l.records = records
	l.synced = l.appended // the new file holds every record, and is fsynced
	l.err = nil
}

// Close syncs and closes the file.
func (l *Log) Close() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Sync()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	if err != nil {
		return fmt.Errorf("closing %s: %w", l.path, err)
	}
	return nil
}

// SyncDir fsyncs a directory, making the creation, rename or removal of
// files in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening directory %s for sync: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}
