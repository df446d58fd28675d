package roomhub

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-wiredb/wiredb/internal/yref"
	"github.com/caddy-wiredb/wiredb/internal/ysafe"
	"github.com/caddy-wiredb/wiredb/storage"
	"github.com/caddy-wiredb/wiredb/yproto"
)

// textInsert is an update in which client inserts s into the root text "t"
// at clock 0.
func textInsert(client uint64, s string) []byte {
	u := []byte{1, 1}
	u = yproto.AppendVarUint(u, client)
	u = append(u, 0, 4, 1) // clock 0, ContentString, parent is a root type
	u = yproto.AppendVarString(u, "t")
	u = yproto.AppendVarString(u, s)
	return append(u, 0)
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// Rooms left without connections are unloaded after the idle grace period
// and give their memory back; the next join loads them again, whole.
func TestUnloadedRoomsReleaseMemory(t *testing.T) {
	const rooms, size = 400, 64 << 10
	dir := t.TempDir()
	hub := newTestHub(t, dir, Options{IdleUnload: 50 * time.Millisecond})
	base := heapAlloc()

	held := make([]*room, rooms)
	for i := range held {
		r, err := hub.acquire(fmt.Sprintf("room-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		u := textInsert(uint64(i+1), strings.Repeat(string(rune('a'+i%26)), size))
		if err := r.applyUpdate(nil, u, yproto.UpdateInfo{}, nil, false); err != nil {
			t.Fatal(err)
		}
		held[i] = r
	}
	loaded := heapAlloc()
	if loaded < base+rooms*size {
		t.Fatalf("heap with %d rooms of %d KiB loaded grew by only %d KiB; the test measures nothing", rooms, size>>10, (loaded-base)>>10)
	}
	for _, r := range held {
		hub.release(r)
	}
	held = nil
	deadline := time.Now().Add(20 * time.Second)
	for hub.roomCount() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d rooms still loaded 20 s after their last connection left", hub.roomCount())
		}
		time.Sleep(20 * time.Millisecond)
	}
	after := heapAlloc()
	t.Logf("heap: %d KiB at start, %d KiB with %d rooms loaded, %d KiB after they unloaded",
		base>>10, loaded>>10, rooms, after>>10)
	if after > base+(loaded-base)/10 {
		t.Fatalf("unloading kept %d KiB of the %d KiB the rooms took", (after-base)>>10, (loaded-base)>>10)
	}

	// Transparent reload.
	r, err := hub.acquire("room-7")
	if err != nil {
		t.Fatal(err)
	}
	defer hub.release(r)
	r.mu.Lock()
	state, err := r.stateLocked()
	r.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if got := textOf(t, state, "t"); got != strings.Repeat("h", size) {
		t.Fatalf("reloaded room-7 holds %d chars of text, want %d", len(got), size)
	}
}

// Compaction (during traffic and at unload) rewrites the file as one update
// holding exactly the same document: same text, map and state vector, with
// concurrent inserts, deletes and map overwrites from two clients.
func TestCompactionKeepsContent(t *testing.T) {
	dir := t.TempDir()
	hub := newTestHub(t, dir, Options{CompactRecords: 50})
	r, err := hub.acquire("doc")
	if err != nil {
		t.Fatal(err)
	}
	updates := randomEdits(t, 2, 400)
	for _, u := range updates {
		info, err := yproto.ValidateUpdate(u, yproto.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.applyUpdate(nil, u, info, nil, false); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.log.Stats().Records; n >= 50 {
		t.Fatalf("%d records in the file after %d updates with compact 50", n, len(updates))
	}
	hub.release(r)
	hub.Close()

	opened, err := hub.store.Open("doc")
	if err != nil {
		t.Fatal(err)
	}
	opened.Log.Close()
	records := opened.Updates
	if len(records) != 1 {
		t.Fatalf("%d records after unload, want 1", len(records))
	}
	wantText, wantMap, wantSV := readDoc(t, updates...)
	gotText, gotMap, gotSV := readDoc(t, records[0])
	if gotText != wantText || gotMap != wantMap || gotSV != wantSV {
		t.Fatalf("compacted file differs from the updates:\ntext %q\nwant %q\nmap %s want %s\nsv %s want %s",
			gotText, wantText, gotMap, wantMap, gotSV, wantSV)
	}
	if len(wantText) < 50 {
		t.Fatalf("the edits left little to compare: %q", wantText)
	}
}

// Reconfigure (a config reload) applies to rooms already loaded: here the
// compaction bound, then the fsync policy, change under a live room whose
// connection stays open and keeps relaying.
func TestReconfigureAppliesToLoadedRooms(t *testing.T) {
	dir := t.TempDir()
	hub := newTestHub(t, dir, Options{Fsync: FsyncPolicy{Mode: FsyncNever}})
	url := testServer(t, hub)
	a, b := dial(t, url+"/live"), dial(t, url+"/live")
	a.next(isSync(yproto.SyncStep1))
	b.next(isSync(yproto.SyncStep1))
	w := newDocWriter()
	send := func(n int) {
		for i := range n {
			a.send(yproto.AppendSyncUpdate(nil, w.insert("t", fmt.Sprint(i%10))))
			b.next(isSync(yproto.SyncUpdate))
		}
	}
	records := func() int {
		r, err := hub.acquire("live")
		if err != nil {
			t.Fatal(err)
		}
		defer hub.release(r)
		return r.log.Stats().Records
	}
	send(30)
	if n := records(); n != 30 {
		t.Fatalf("%d records before the reload, want 30", n)
	}
	hub.Reconfigure(Options{CompactRecords: 10, Fsync: FsyncPolicy{Mode: FsyncAlways}})
	fsyncs := testStoreOf(hub).fsyncs.Load()
	send(5)
	if n := records(); n >= 10 {
		t.Fatalf("%d records after reconfiguring compact 10", n)
	}
	if testStoreOf(hub).fsyncs.Load() == fsyncs {
		t.Fatal("no fsync after reconfiguring fsync always")
	}
	if got := textOf(t, b.fullState(), "t"); len(got) != 35 {
		t.Fatalf("room text has %d characters, want 35", len(got))
	}
}

// stateVectorOf agrees with y-crdt's EncodeStateVectorFromUpdate: on merged
// random edits (many clients, deletes), on single updates, on an update
// that starts above clock 0, and on the empty update.
func TestStateVectorOfAgreesWithYCRDT(t *testing.T) {
	updates := randomEdits(t, 4, 600)
	merged, err := yref.Merge(updates)
	if err != nil {
		t.Fatal(err)
	}
	cases := [][]byte{merged, updates[0], updates[len(updates)-1], typingUpdate(7, 5, 'x'), emptyUpdate}
	for i, u := range cases {
		want, err := ysafe.StateVector(u)
		if err != nil {
			t.Fatal(err)
		}
		got, err := stateVectorOf(u)
		if err != nil {
			t.Fatal(err)
		}
		wantMap, err1 := yproto.ValidateStateVector(want)
		gotMap, err2 := yproto.ValidateStateVector(got)
		if err1 != nil || err2 != nil || fmt.Sprint(gotMap) != fmt.Sprint(wantMap) {
			t.Fatalf("case %d: state vector %v (%x), y-crdt says %v (%x)", i, gotMap, got, wantMap, want)
		}
	}
}

// Compactions run outside the room lock while writers append and joins fold
// the tail: nothing is lost from the room's state, from the live file, or
// from the file after unload, under every fsync policy.
func TestCompactionOffTheLockKeepsEverything(t *testing.T) {
	for _, mode := range []FsyncMode{FsyncNever, FsyncAlways} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			dir := t.TempDir()
			hub := newTestHub(t, dir, Options{CompactRecords: 20, Fsync: FsyncPolicy{Mode: mode}})
			r, err := hub.acquire("doc")
			if err != nil {
				t.Fatal(err)
			}
			const writers = 4
			updates := randomEdits(t, writers, 800)
			var wg sync.WaitGroup
			applyConcurrently(t, &wg, r, updates, writers)
			stop := make(chan struct{})
			joiner := sync.WaitGroup{}
			joiner.Go(func() {
				// What a join does: fold the tail into the snapshot.
				for {
					select {
					case <-stop:
						return
					default:
					}
					r.mu.Lock()
					if _, err := r.stateVectorLocked(); err != nil {
						t.Error(err)
					}
					r.mu.Unlock()
					time.Sleep(200 * time.Microsecond)
				}
			})
			wg.Wait()
			close(stop)
			joiner.Wait()

			r.mu.Lock()
			r.awaitJobsLocked()
			state, err := r.stateLocked()
			records := r.log.Stats().Records
			r.mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			if records >= len(updates)/2 {
				t.Fatalf("%d records in the file after %d updates with compact 20: no compaction ran", records, len(updates))
			}
			wantText, wantMap, wantSV := readDoc(t, updates...)
			check := func(what string, got ...[]byte) {
				t.Helper()
				// Merged first: y-crdt's ApplyUpdate drops a delete whose
				// target comes in a later update (docs/y-crdt.md, "Early deletes are lost"), and
				// concurrent writers append in any order.
				merged, err := yref.Merge(got)
				if err != nil {
					t.Fatal(err)
				}
				text, m, sv := readDoc(t, merged)
				if text != wantText || m != wantMap || sv != wantSV {
					t.Fatalf("%s differs from the updates:\ntext %q\nwant %q\nmap %s want %s\nsv %s want %s", what, text, wantText, m, wantMap, sv, wantSV)
				}
			}
			check("the room's state", state)

			// The live file, read from a copy.
			data, err := os.ReadFile(filepath.Join(dir, "doc.y"))
			if err != nil {
				t.Fatal(err)
			}
			copyDir := t.TempDir()
			if err := os.WriteFile(filepath.Join(copyDir, "doc.y"), data, 0o644); err != nil {
				t.Fatal(err)
			}
			copyStore, err := storage.OpenStore(copyDir)
			if err != nil {
				t.Fatal(err)
			}
			opened, err := copyStore.Open("doc")
			if err != nil {
				t.Fatal(err)
			}
			opened.Log.Close()
			live := opened.Updates
			check("the live file", live...)

			hub.release(r)
			hub.Close()
			reopened, err := hub.store.Open("doc")
			if err != nil {
				t.Fatal(err)
			}
			reopened.Log.Close()
			after := reopened.Updates
			if len(after) != 1 {
				t.Fatalf("%d records after unload, want 1", len(after))
			}
			check("the file after unload", after...)
		})
	}
}

// Updates accepted while a compaction runs (here: between its merge and the
// file's rewrite) are in the file right after it, behind the merged record.
func TestCompactionKeepsUpdatesAcceptedWhileItRuns(t *testing.T) {
	dir := t.TempDir()
	hub := newTestHub(t, dir, Options{CompactRecords: 20, Fsync: FsyncPolicy{Mode: FsyncNever}})
	r, err := hub.acquire("doc")
	if err != nil {
		t.Fatal(err)
	}
	defer hub.release(r)
	updates := randomEdits(t, 1, 60)
	next := 0
	apply := func() {
		t.Helper()
		u := updates[next]
		next++
		if err := applyValidated(r, u); err != nil {
			t.Fatal(err)
		}
	}
	hooked := 0
	hook := func() {
		hooked++
		if hooked == 1 {
			for range 5 {
				apply()
			}
		}
	}
	testStoreOf(hub).beforeCheckpoint.Store(&hook)
	defer testStoreOf(hub).beforeCheckpoint.Store(nil)
	for hooked == 0 {
		apply()
	}
	data, err := os.ReadFile(filepath.Join(dir, "doc.y"))
	if err != nil {
		t.Fatal(err)
	}
	scan := storage.ScanFile(data)
	if scan.Err != nil || scan.TornAt >= 0 {
		t.Fatalf("the file after the compaction: %v, torn at %d", scan.Err, scan.TornAt)
	}
	records := storage.Updates(scan.Records)
	if len(records) != 6 {
		t.Fatalf("%d records after the compaction, want the merged one and the 5 accepted meanwhile", len(records))
	}
	for i, u := range updates[next-5 : next] {
		if !bytes.Equal(records[1+i], u) {
			t.Fatalf("record %d is not the update accepted meanwhile", 1+i)
		}
	}
	merged, err := yref.Merge(records)
	if err != nil {
		t.Fatal(err)
	}
	wantText, _, wantSV := readDoc(t, updates[:next]...)
	if text, _, sv := readDoc(t, merged); text != wantText || sv != wantSV {
		t.Fatalf("the file after the compaction holds %q (sv %s), want %q (sv %s)", text, sv, wantText, wantSV)
	}
	r.mu.Lock()
	tail := len(r.tail)
	r.mu.Unlock()
	if tail != 5 {
		t.Fatalf("the room's tail holds %d updates after the compaction, want the 5 accepted meanwhile", tail)
	}
}

// A compacted room's state vector comes from storage's parse of its one
// record at load, and equals y-crdt's.
func TestLoadTakesStateVectorFromStoragesParse(t *testing.T) {
	dir := t.TempDir()
	hub := newTestHub(t, dir, Options{})
	r, err := hub.acquire("doc")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range randomEdits(t, 3, 300) {
		if err := applyValidated(r, u); err != nil {
			t.Fatal(err)
		}
	}
	hub.release(r)
	hub.Close() // compacts the file to one record

	hub2 := newTestHub(t, dir, Options{})
	r2, err := hub2.acquire("doc")
	if err != nil {
		t.Fatal(err)
	}
	defer hub2.release(r2)
	r2.mu.Lock()
	defer r2.mu.Unlock()
	if r2.log.Stats().Records != 1 || r2.stateVector == nil {
		t.Fatalf("after loading a compacted file: %d records, state vector %x", r2.log.Stats().Records, r2.stateVector)
	}
	want, err := ysafe.StateVector(r2.snapshot)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := yproto.ValidateStateVector(r2.stateVector)
	exp, _ := yproto.ValidateStateVector(want)
	if fmt.Sprint(got) != fmt.Sprint(exp) || len(got) != 3 {
		t.Fatalf("state vector at load %v, y-crdt says %v", got, exp)
	}
}

// Clients joining while writers edit get, from their step 2 and the updates
// relayed after their join, the whole document: the step 2 is built from a
// merge done without the room lock (refreshState), while compactions run.
func TestJoinsDuringEditsGetTheWholeDocument(t *testing.T) {
	for _, mode := range []FsyncMode{FsyncNever, FsyncAlways} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			hub := newTestHub(t, t.TempDir(), Options{CompactRecords: 20, OutboundQueueBytes: 64 << 20, Fsync: FsyncPolicy{Mode: mode}})
			r, err := hub.acquire("doc")
			if err != nil {
				t.Fatal(err)
			}
			defer hub.release(r)
			const writers, joiners = 4, 12
			updates := randomEdits(t, writers, 600)
			var wg sync.WaitGroup
			applyConcurrently(t, &wg, r, updates, writers)
			conns := make([]*conn, joiners)
			sinks := make([]*frameSink, joiners)
			for j := range sinks {
				sinks[j] = newFrameSink()
			}
			for j := range joiners {
				wg.Go(func() {
					time.Sleep(time.Duration(j) * time.Millisecond)
					c := newConn(sinks[j].transport(), YWebsocket, false, hub)
					if err := r.join(c); err != nil {
						t.Error(err)
						return
					}
					if err := r.answerStep1(c, []byte{0}); err != nil {
						t.Error(err)
						return
					}
					conns[j] = c
				})
			}
			wg.Wait()
			defer func() {
				for _, c := range conns {
					if c != nil {
						r.leave(c) // they have no WebSocket for the hub's Close to close
					}
				}
			}()
			if t.Failed() {
				return
			}
			wantText, wantMap, wantSV := readDoc(t, updates...)
			for j := range conns {
				queue := sinks[j].messages(t)
				var got [][]byte
				step2 := 0
				for _, frame := range queue {
					m, err := yproto.DecodeMessage(frame)
					if err != nil {
						t.Fatal(err)
					}
					if m.Type == yproto.MessageSync && (m.Sync == yproto.SyncStep2 || m.Sync == yproto.SyncUpdate) {
						got = append(got, m.Payload)
						if m.Sync == yproto.SyncStep2 {
							step2++
						}
					}
				}
				if step2 != 1 {
					t.Fatalf("joiner %d got %d step 2 messages", j, step2)
				}
				merged, err := yref.Merge(got)
				if err != nil {
					t.Fatal(err)
				}
				if text, m, sv := readDoc(t, merged); text != wantText || m != wantMap || sv != wantSV {
					t.Fatalf("joiner %d has %q (sv %s), want %q (sv %s)", j, text, sv, wantText, wantSV)
				}
			}
		})
	}
}

// frameSink stands for a client: it records the messages a conn writes to
// its transport, and hands them out once writing is over.
type frameSink struct{ p *memPipe }

func newFrameSink() *frameSink { return &frameSink{p: newMemPipe()} }

func (s *frameSink) transport() Transport { return &memTransport{p: s.p} }

// messages returns what was written, once nothing more came for 100 ms.
func (s *frameSink) messages(t *testing.T) [][]byte {
	t.Helper()
	var out [][]byte
	for {
		select {
		case m := <-s.p.toClient:
			out = append(out, m.data)
		case <-time.After(100 * time.Millisecond):
			return out
		}
	}
}

// applyConcurrently starts, in wg, writers goroutines that apply updates to
// r: writer w applies every writers-th update from the w-th on, in order.
func applyConcurrently(t *testing.T, wg *sync.WaitGroup, r *room, updates [][]byte, writers int) {
	for w := range writers {
		wg.Go(func() {
			for i := w; i < len(updates); i += writers {
				if err := applyValidated(r, updates[i]); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
}

// applyValidated validates an update and applies it to r, as a live update
// from no connection.
func applyValidated(r *room, u []byte) error {
	info, err := yproto.ValidateUpdate(u, yproto.Limits{})
	if err != nil {
		return err
	}
	return r.applyUpdate(nil, u, info, nil, false)
}

// stubbornTransport is a peer that never answers a close frame: its Close
// leaves the connection open, so only a cut ends the read.
type stubbornTransport struct{ *memTransport }

func (stubbornTransport) Close(StatusCode, string) error { return nil }

// Connections still open at the shutdown timeout are cut, so that their
// readers end and Close does not leave them behind.
func TestCloseCutsConnectionsLeftAtShutdownTimeout(t *testing.T) {
	store := openTestStore(t, t.TempDir())
	hub := New(store, Options{ShutdownTimeout: 100 * time.Millisecond})
	p := newMemPipe()
	if err := hub.Start("stuck", stubbornTransport{&memTransport{p: p}}, ConnOptions{}); err != nil {
		t.Fatal(err)
	}
	client := &memClient{p: p}
	if _, _, err := client.Read(t.Context()); err != nil { // the greeting: it has joined
		t.Fatal(err)
	}
	hub.Close()
	ended := make(chan struct{})
	go func() { hub.serving.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection's reader still runs 10 s after Close")
	}
	select {
	case <-p.done:
	default:
		t.Fatal("the connection was not cut")
	}
}
