package roomhub

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-wiredb/wiredb/yproto"
)

type countingObserver struct {
	changed, loaded, unloaded atomic.Int64
}

func (o *countingObserver) Changed(string, int) { o.changed.Add(1) }
func (o *countingObserver) Loaded(string)       { o.loaded.Add(1) }
func (o *countingObserver) Unloaded(string)     { o.unloaded.Add(1) }

// A backend's write is relayed like a client's, and returns only once it
// is stored under the fsync policy; reads create nothing.
func TestBackendWriteAndRead(t *testing.T) {
	dir := t.TempDir()
	hub := newTestHub(t, dir, Options{Fsync: FsyncPolicy{Mode: FsyncAlways}, IdleUnload: 50 * time.Millisecond})
	obs := &countingObserver{}
	stop := hub.Observe(obs)
	defer stop()
	url := testServer(t, hub)
	a := dial(t, url+"/doc")
	a.next(isSync(yproto.SyncStep1))

	w := newDocWriter()
	first := w.insert("t", "from a backend")
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock()
	hold := func() { <-release }
	testStoreOf(hub).beforeSync.Store(&hold)
	type result struct {
		sv  []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		sv, err := hub.WriteRoom(context.Background(), "doc", first)
		done <- result{sv, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("WriteRoom returned (%v) while its fsync was held", r.err)
	case <-time.After(100 * time.Millisecond):
	}
	testStoreOf(hub).beforeSync.Store(nil)
	unblock()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if got := textOf(t, a.next(isSync(yproto.SyncUpdate)).Payload, "t"); got != "from a backend" {
		t.Fatalf("the connected client got %q", got)
	}
	if obs.changed.Load() != 1 {
		t.Fatalf("observer saw %d changes, want 1", obs.changed.Load())
	}

	st, err := hub.ReadRoom("doc", nil)
	if err != nil || textOf(t, st.Update, "t") != "from a backend" || string(st.StateVector) != string(r.sv) {
		t.Fatalf("ReadRoom: %q, sv % x (write said % x), %v", textOf(t, st.Update, "t"), st.StateVector, r.sv, err)
	}
	if _, err := hub.WriteRoom(context.Background(), "doc", w.insert("t", "!")); err != nil {
		t.Fatal(err)
	}
	diff, err := hub.ReadRoom("doc", r.sv)
	merged, merr := yproto.MergeUpdates([][]byte{first, diff.Update})
	if err != nil || merr != nil || textOf(t, merged, "t") != "from a backend!" {
		t.Fatalf("the diff against the first state vector does not complete it (%v)", err)
	}

	if _, err := hub.WriteRoom(context.Background(), "doc", []byte("garbage")); !errors.Is(err, ErrInvalidUpdate) {
		t.Fatalf("garbage: %v, want ErrInvalidUpdate", err)
	}
	if _, err := hub.ReadRoom("missing", nil); !errors.Is(err, ErrRoomNotFound) {
		t.Fatalf("missing room: %v", err)
	}
	if _, err := hub.RoomAwareness("missing"); !errors.Is(err, ErrRoomNotFound) {
		t.Fatalf("missing room's awareness: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.y")); !os.IsNotExist(err) {
		t.Fatalf("reading a missing room created its file (%v)", err)
	}
	if obs.loaded.Load() != 1 {
		t.Fatalf("observer saw %d loads, want 1", obs.loaded.Load())
	}
}
