package storage

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Records appended between Mark and Compact, before it starts or while it
// runs, follow the merged record in the new file, in order.
func TestCompactKeepsRecordsAppendedAfterMark(t *testing.T) {
	s, l := openWithRecords(t, 10)
	m := l.End()
	merged := textUpdate(3, 0, "xxxxxxxxxx")
	var later [][]byte
	for i := range 3 {
		u := textUpdate(4, uint64(i), "z")
		later = append(later, u)
		if _, err := l.Append(u); err != nil {
			t.Fatal(err)
		}
	}

	// Appends while the compaction runs, from another goroutine.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	wg.Go(func() {
		for i := uint64(3); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			u := textUpdate(4, i, "z")
			mu.Lock()
			_, err := l.Append(u)
			if err == nil {
				later = append(later, u)
			}
			mu.Unlock()
			if err != nil {
				t.Error(err)
				return
			}
		}
	})
	if err := l.Checkpoint(merged, m); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()

	if got, want := l.Stats().Records, 1+len(later); got != want {
		t.Fatalf("Records() = %d after compaction, want %d", got, want)
	}
	if l.Unsynced() != 0 {
		// The appends after the compaction are not synced yet.
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	path, _ := s.Path("c")
	data, _ := os.ReadFile(path)
	if want := fileOf(append([][]byte{merged}, later...)...); !bytes.Equal(data, want) {
		t.Fatalf("compacted file holds %d bytes, want merged + %d later records (%d bytes)", len(data), len(later), len(want))
	}
	_, recs, _, err := openLog(s, "c")
	if err != nil || len(recs) != 1+len(later) {
		t.Fatalf("reopened: %d records, err %v", len(recs), err)
	}
	if left, _ := filepath.Glob(filepath.Join(s.Dir(), "*.tmp")); len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}
}

// A mark from before another compaction is refused, and nothing changes.
func TestCompactStaleMark(t *testing.T) {
	s := openStore(t)
	l, _, _, err := openLog(s, "c")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 4 {
		if _, err := l.Append(textUpdate(3, uint64(i), "x")); err != nil {
			t.Fatal(err)
		}
	}
	m := l.End()
	if err := l.Checkpoint(textUpdate(3, 0, "xxxx"), m); err != nil {
		t.Fatal(err)
	}
	path, _ := s.Path("c")
	before, _ := os.ReadFile(path)
	if err := l.Checkpoint(textUpdate(3, 0, "xx"), m); !errors.Is(err, ErrStalePosition) {
		t.Fatalf("compaction with a stale mark: %v, want ErrStalePosition", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("a refused compaction changed the file")
	}
	if left, _ := filepath.Glob(filepath.Join(s.Dir(), "*.tmp")); len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}
}

func TestCompactClosedLog(t *testing.T) {
	s := openStore(t)
	l, _, _, err := openLog(s, "c")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(textUpdate(3, 0, "x")); err != nil {
		t.Fatal(err)
	}
	m := l.End()
	l.Close()
	if err := l.Checkpoint(textUpdate(3, 0, "x"), m); !errors.Is(err, ErrClosed) {
		t.Fatalf("compacting a closed log: %v, want ErrClosed", err)
	}
}

// openWithRecords opens room "c" of a new store and appends n one-character
// inserts of client 3 to it.
func openWithRecords(t *testing.T, n int) (*Store, *FileLog) {
	t.Helper()
	s := openStore(t)
	l, _, _, err := openLog(s, "c")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := l.Append(textUpdate(3, uint64(i), "x")); err != nil {
			t.Fatal(err)
		}
	}
	return s, l
}
