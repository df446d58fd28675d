package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/caddy-wiredb/wiredb/yproto"
)

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
	// ErrStalePosition is returned by Checkpoint when the log was replaced
	// (by another checkpoint) after its position was taken. Nothing was
	// changed.
	ErrStalePosition = errors.New("storage: checkpoint position is stale")
)

// Store is a directory of room files, one FileLog per room: the LogStore
// of WireDB files. It is safe for concurrent use; callers must not open two
// Logs for the same key at once (roomhub guarantees this).
type Store struct {
	dir string

	// leftovers are the temp files of interrupted compactions found when
	// the store opened, by room file name; Open removes a room's. (Listing
	// the directory on every room load would cost O(rooms) each time, and a
	// running server removes the temp files of its own failed compactions.)
	leftoversMu sync.Mutex
	leftovers   map[string][]string
}

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

// Exists reports whether key has a file.
func (s *Store) Exists(key string) (bool, error) {
	path, err := s.Path(key)
	if err != nil {
		return false, err
	}
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	return true, nil
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
// file they belong to: <name>.<digits>.tmp, as Checkpoint names them, for a
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

// FileLog is one room's WireDB file, open for appending: the Log of a
// Store. Its methods are safe for concurrent use.
type FileLog struct {
	path string

	// syncMu serialises the operations that fsync or replace f (Sync,
	// Checkpoint, Close), so that Sync can fsync without holding mu:
	// appends go on while an fsync runs, which is what lets one fsync cover
	// many appends (group commit).
	syncMu sync.Mutex

	mu              sync.Mutex
	f               *os.File
	size            int64  // bytes known to be whole records (plus header)
	records         int    // records in the file
	checkpointBytes int64  // the header and the checkpoint's record, if any
	appended        uint64 // records appended since Open, ever
	synced          uint64 // appended records known to be on stable storage
	err             error  // sticky: a failed write that could not be rolled back
	gen             uint64 // which file f is: incremented each time Checkpoint replaces it
}

// Open opens (creating if needed) the file of key and reads every record in
// it. A torn last record is cut off and reported in Recovery; any other
// damage returns an error wrapping ErrNotWireDB, ErrUnknownVersion or
// ErrCorrupt, and the file is not modified.
func (s *Store) Open(key string) (Opened, error) {
	var o Opened
	path, err := s.Path(key)
	if err != nil {
		return o, err
	}
	o.Recovery.RemovedTemps = s.removeCompactionLeftovers(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return o, fmt.Errorf("opening %s: %w", path, err)
	}
	fail := func(err error) (Opened, error) {
		f.Close()
		return Opened{}, err
	}
	data, err := readAll(f)
	if err != nil {
		return fail(fmt.Errorf("reading %s: %w", path, err))
	}
	var last yproto.UpdateInfo
	scan := ScanRecords(data, func(r Record) {
		o.Updates = append(o.Updates, r.Update)
		last = r.Info
	})
	if scan.Err != nil {
		return fail(fmt.Errorf("reading %s: %w", path, scan.Err))
	}
	total := int64(len(data))
	good := scan.End(total)
	switch {
	case total == 0:
		// New file: write the header and make its directory entry durable.
		if _, err := f.Write([]byte(Header)); err != nil {
			return fail(fmt.Errorf("writing header of %s: %w", path, err))
		}
		if err := f.Sync(); err != nil {
			return fail(fmt.Errorf("syncing %s: %w", path, err))
		}
		if err := SyncDir(s.dir); err != nil {
			return fail(err)
		}
		good = int64(len(Header))
	case good < total:
		// A torn tail: the process died in the middle of a write(2).
		o.Recovery.TruncatedBytes = total - good
		if err := f.Truncate(good); err != nil {
			return fail(fmt.Errorf("cutting torn tail of %s: %w", path, err))
		}
		if good == 0 { // even the header was torn: start it again
			if _, err := f.WriteAt([]byte(Header), 0); err != nil {
				return fail(fmt.Errorf("rewriting header of %s: %w", path, err))
			}
			good = int64(len(Header))
		}
		if err := f.Sync(); err != nil {
			return fail(fmt.Errorf("syncing %s: %w", path, err))
		}
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		return fail(err)
	}
	l := &FileLog{path: path, f: f, size: good, records: len(o.Updates), checkpointBytes: int64(len(Header))}
	if len(o.Updates) == 1 {
		l.checkpointBytes = good
		o.Snapshot = &last
	}
	o.Log = l
	return o, nil
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

// Name is the file's path.
func (l *FileLog) Name() string { return l.path }

// End returns the file's current end.
func (l *FileLog) End() Position {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.endLocked()
}

func (l *FileLog) endLocked() Position {
	return Position{Gen: l.gen, Offset: l.size, Records: l.records}
}

// Stats describes the file.
func (l *FileLog) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := Stats{
		Bytes:                l.size,
		Records:              l.records,
		CheckpointBytes:      l.checkpointBytes,
		SinceCheckpointBytes: l.size - l.checkpointBytes,
	}
	st.SinceCheckpointRecords = l.records
	if l.checkpointBytes > int64(len(Header)) {
		st.SinceCheckpointRecords-- // the checkpoint's own record
	}
	return st
}

// Append writes one record with a single write(2). When it returns nil the
// record is in the kernel's page cache: it survives a crash of the process,
// and a power loss only after Sync. A failed write is rolled back so that the
// file never holds a partial record in its middle.
func (l *FileLog) Append(update []byte) (Position, error) {
	buf := AppendRecord(make([]byte, 0, RecordSize(update)), update)

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return Position{}, ErrClosed
	}
	if l.err != nil {
		return Position{}, l.err
	}
	n, err := l.f.Write(buf)
	if err != nil {
		if n > 0 {
			if terr := l.f.Truncate(l.size); terr != nil {
				l.err = fmt.Errorf("appending to %s: %w (and rolling back: %v)", l.path, err, terr)
				return Position{}, l.err
			}
			if _, serr := l.f.Seek(l.size, io.SeekStart); serr != nil {
				l.err = fmt.Errorf("appending to %s: %w (and seeking back: %v)", l.path, err, serr)
				return Position{}, l.err
			}
		}
		return Position{}, fmt.Errorf("appending to %s: %w", l.path, err)
	}
	l.size += int64(n)
	l.records++
	l.appended++
	return l.endLocked(), nil
}

// Sync flushes to stable storage (fsync) every record appended before the
// call. Appends made while it runs wait for the next Sync, without blocking
// on this one. It is a no-op when nothing was appended since the last Sync.
func (l *FileLog) Sync() error {
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
	// f stays open: Checkpoint and Close, the only ones that replace or close
	// it, wait for syncMu.
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", l.path, err)
	}
	l.mu.Lock()
	l.synced = target
	l.mu.Unlock()
	return nil
}

// Unsynced is the number of appended records not yet known to be on stable
// storage.
func (l *FileLog) Unsynced() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int(l.appended - l.synced)
}

// Checkpoint replaces the file with the header, one record holding merged,
// and the records appended after m, which was taken with End or Append;
// merged must contain everything the log held at m. The new file is written beside the
// old one, fsynced, renamed over it and the directory fsynced, so a crash at
// any point leaves either the old or the new file, whole.
//
// Most of the work happens while appends (and Syncs) go on: the new file is
// written and fsynced with no lock held, and only the records appended
// meanwhile (usually few) are copied, and fsynced, while appends wait.
// It returns ErrStalePosition, with nothing changed, if another checkpoint
// replaced the file after m.
func (l *FileLog) Checkpoint(merged []byte, m Position) error {
	l.mu.Lock()
	f, gen, copied := l.f, l.gen, l.size
	l.mu.Unlock()
	if f == nil {
		return ErrClosed
	}
	if gen != m.Gen {
		return ErrStalePosition
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
		if errors.Is(err, ErrClosed) || errors.Is(err, ErrStalePosition) {
			return err
		}
		return fmt.Errorf("compacting %s: %w", l.path, err)
	}
	buf := EncodeFile(merged)
	if _, err := tmp.Write(buf); err != nil {
		return fail(err)
	}
	size := int64(len(buf))
	// Records appended after m so far: whole records (l.size only counts
	// those), read with pread while appends go on at the end of f.
	n, err := copyRange(tmp, f, m.Offset, copied)
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
		return fail(ErrStalePosition)
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
	records := 1 + l.records - m.Records
	checkpoint := int64(len(buf))
	if err := SyncDir(dir); err != nil {
		// The rename happened; the new file is the log from now on.
		l.swap(tmp, size, records, checkpoint)
		return err
	}
	l.swap(tmp, size, records, checkpoint)
	return nil
}

// copyRange appends the bytes [from, to) of src to dst.
func copyRange(dst io.Writer, src *os.File, from, to int64) (int64, error) {
	if to <= from {
		return 0, nil
	}
	return io.Copy(dst, io.NewSectionReader(src, from, to-from))
}

func (l *FileLog) swap(f *os.File, size int64, records int, checkpointBytes int64) {
	l.f.Close()
	l.f = f
	l.gen++
	l.size = size
	l.records = records
	l.checkpointBytes = checkpointBytes
	l.synced = l.appended // the new file holds every record, and is fsynced
	l.err = nil
}

// Close syncs and closes the file.
func (l *FileLog) Close() error {
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
