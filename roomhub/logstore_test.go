package roomhub

import (
	"sync/atomic"
	"testing"

	"github.com/caddy-wiredb/wiredb/storage"
)

// testStore is the file store with what tests watch: it counts the fsyncs
// that made appended records durable, and can run a hook before a
// checkpoint rewrites a log (between a compaction's merge and its
// rewrite, with the room unlocked when the compaction runs off the lock).
type testStore struct {
	storage.LogStore
	fsyncs           atomic.Uint64
	beforeCheckpoint atomic.Pointer[func()]
	beforeSync       atomic.Pointer[func()]
}

func openTestStore(t testing.TB, dir string) *testStore {
	t.Helper()
	store, err := storage.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &testStore{LogStore: store}
}

// testStoreOf returns the testStore a test hub was made with.
func testStoreOf(h *Hub) *testStore { return h.store.(*testStore) }

func (s *testStore) Open(key string) (storage.Opened, error) {
	opened, err := s.LogStore.Open(key)
	if err == nil {
		opened.Log = &testLog{Log: opened.Log, s: s}
	}
	return opened, err
}

type testLog struct {
	storage.Log
	s *testStore
}

func (l *testLog) Sync() error {
	if f := l.s.beforeSync.Load(); f != nil {
		(*f)()
	}
	had := l.Log.Unsynced() > 0
	err := l.Log.Sync()
	if err == nil && had {
		l.s.fsyncs.Add(1)
	}
	return err
}

func (l *testLog) Checkpoint(merged []byte, upTo storage.Position) error {
	if f := l.s.beforeCheckpoint.Load(); f != nil {
		(*f)()
	}
	return l.Log.Checkpoint(merged, upTo)
}
