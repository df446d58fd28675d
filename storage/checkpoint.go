package storage

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Checkpoint files hold a room's state in cluster mode, where the log of
// updates lives in a shared service (a Redis stream) and the files in a
// directory every server shares. Each is a WireDB file with one record,
// the room's merged state up to a sequence number of that log, and is
// never rewritten: a newer checkpoint gets a new name, so a server that
// lost the right to checkpoint can at worst leave a file nobody points at,
// never overwrite newer state.
//
// A checkpoint's name is the room's file name (FileName) with, before the
// ".y", '@', the sequence number in 20 digits, '-' and 8 random hex digits:
//
//	notes%2F42@00000000000000001234-9f86d081.y
//
// '@' is always percent-encoded in a room's own file name, so no key's
// file name is ever a checkpoint's.

// checkpointSep separates a room's file name from a checkpoint's sequence.
const checkpointSep = "@"

// CheckpointName returns a fresh name for a checkpoint of key covering its
// log up to seq.
func CheckpointName(key string, seq uint64) (string, error) {
	base, err := FileName(key)
	if err != nil {
		return "", err
	}
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s%s%020d-%s%s", strings.TrimSuffix(base, FileExt), checkpointSep, seq,
		hex.EncodeToString(rnd[:]), FileExt), nil
}

// CheckpointSeq returns the sequence number a checkpoint name carries, and
// whether name is a checkpoint of key at all.
func CheckpointSeq(key, name string) (uint64, bool) {
	base, err := FileName(key)
	if err != nil {
		return 0, false
	}
	prefix := strings.TrimSuffix(base, FileExt) + checkpointSep
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok || !strings.HasSuffix(rest, FileExt) || len(rest) != 20+1+8+len(FileExt) || rest[20] != '-' {
		return 0, false
	}
	seq, err := strconv.ParseUint(rest[:20], 10, 64)
	return seq, err == nil
}

// WriteCheckpoint writes merged as the checkpoint file name in dir, and
// makes it durable: a temp file, fsynced, renamed into place, and the
// directory fsynced. It refuses to replace an existing file.
func WriteCheckpoint(dir, name string, merged []byte) error {
	path := filepath.Join(dir, name)
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("writing checkpoint %s: %w", path, fs.ErrExist)
	}
	tmp, err := os.CreateTemp(dir, name+".*.tmp")
	if err != nil {
		return fmt.Errorf("writing checkpoint %s: %w", path, err)
	}
	fail := func(err error) error {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("writing checkpoint %s: %w", path, err)
	}
	if _, err := tmp.Write(EncodeFile(merged)); err != nil {
		return fail(err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing checkpoint %s: %w", path, err)
	}
	return SyncDir(dir)
}

// ReadCheckpoint reads the updates of a checkpoint file (or of a room file
// a single server wrote, which a cluster adopts as its first checkpoint).
// A torn tail is ignored, as when a room file is opened; anything else it
// cannot read is an error naming the file.
func ReadCheckpoint(dir, name string) ([][]byte, error) {
	path := filepath.Join(dir, name)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var updates [][]byte
	s := ScanRecords(data, func(r Record) { updates = append(updates, r.Update) })
	if s.Err != nil {
		return nil, fmt.Errorf("%s: %w", path, s.Err)
	}
	return updates, nil
}

// LatestCheckpoint returns the name of key's newest file in dir: its most
// recently written checkpoint, else its room file of a single server, else
// "". A cluster adopts it when the shared log lost the room's metadata
// (a new room, or a Redis that lost its data), so that what the files hold
// is never dropped. It lists the directory, so it is for that rare case.
func LatestCheckpoint(dir, key string) (string, error) {
	base, err := FileName(key)
	if err != nil {
		return "", err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var latest string
	var latestTime time.Time
	legacy := false
	for _, e := range entries {
		name := e.Name()
		if name == base {
			legacy = true
			continue
		}
		if _, ok := CheckpointSeq(key, name); !ok {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		if latest == "" || info.ModTime().After(latestTime) {
			latest, latestTime = name, info.ModTime()
		}
	}
	if latest == "" && legacy {
		latest = base
	}
	return latest, nil
}

// RemoveCheckpoints removes key's checkpoint files in dir other than keep
// whose last change is older than grace: a server may still be reading a
// checkpoint that was current a moment ago. It returns the names removed.
// A room file of a single server is never removed.
func RemoveCheckpoints(dir, key, keep string, grace time.Duration) ([]string, error) {
	base, err := FileName(key)
	if err != nil {
		return nil, err
	}
	prefix := strings.TrimSuffix(base, FileExt) + checkpointSep
	matches, err := filepath.Glob(filepath.Join(dir, globEscape(prefix)+"*"+FileExt))
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, path := range matches {
		name := filepath.Base(path)
		if name == keep {
			continue
		}
		if _, ok := CheckpointSeq(key, name); !ok {
			continue
		}
		info, err := os.Lstat(path)
		if err != nil || time.Since(info.ModTime()) < grace {
			continue
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, name)
	}
	return removed, errors.Join(errs...)
}

// globEscape escapes the characters filepath.Match treats specially.
func globEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch c {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}
