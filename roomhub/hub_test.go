package roomhub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	y "github.com/skyterra/y-crdt"

	"github.com/caddy-wiredb/wiredb/internal/yref"
	"github.com/caddy-wiredb/wiredb/storage"
	"github.com/caddy-wiredb/wiredb/yproto"
)

func newTestHub(t *testing.T, dir string, opts Options) *Hub {
	t.Helper()
	hub := New(openTestStore(t, dir), opts)
	t.Cleanup(func() { hub.Close() })
	return hub
}

// client is a raw y-websocket peer that records every message it receives.
type client struct {
	t    *testing.T
	ws   *memClient
	msgs chan yproto.Message
	done chan struct{}
	err  error // how the connection ended; valid after done
}

func dial(t *testing.T, url string) *client {
	t.Helper()
	ws, err := connect(url)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	return newClient(t, ws)
}

// newClient reads what the server sends on ws, as a y-websocket client.
func newClient(t *testing.T, ws *memClient) *client {
	c := &client{t: t, ws: ws, msgs: make(chan yproto.Message, 100000), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			_, b, err := ws.Read(context.Background())
			if err != nil {
				c.err = err
				return
			}
			m, err := yproto.DecodeMessage(b)
			if err != nil {
				c.err = fmt.Errorf("server sent a malformed message: %w", err)
				return
			}
			c.msgs <- m
		}
	}()
	t.Cleanup(func() { ws.CloseNow(); <-c.done })
	return c
}

func (c *client) send(frame []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, MessageBinary, frame); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next returns the next message matching keep, failing after a timeout.
func (c *client) next(keep func(yproto.Message) bool) yproto.Message {
	c.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-c.msgs:
			if keep(m) {
				return m
			}
		case <-c.done:
			c.t.Fatalf("connection ended while waiting: %v", c.err)
		case <-deadline:
			c.t.Fatal("timed out waiting for a message")
		}
	}
}

func isSync(st yproto.SyncType) func(yproto.Message) bool {
	return func(m yproto.Message) bool { return m.Type == yproto.MessageSync && m.Sync == st }
}

func isAwareness(m yproto.Message) bool { return m.Type == yproto.MessageAwareness }

// closed waits for the server to close the connection and returns the code.
func (c *client) closed() (StatusCode, string) {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.t.Fatal("server did not close the connection")
	}
	var ce *CloseError
	if !errors.As(c.err, &ce) {
		c.t.Fatalf("connection ended without a close frame: %v", c.err)
	}
	return ce.Code, ce.Reason
}

// docWriter makes real Yjs v1 updates: each edit of its y-crdt doc is
// encoded as the diff against the previous state. y-crdt has unsynchronised
// globals, so all docWriters share one lock.
type docWriter struct {
	doc *y.Doc
	sv  []byte
}

var ycrdtMu sync.Mutex

func newDocWriter() *docWriter {
	ycrdtMu.Lock()
	defer ycrdtMu.Unlock()
	d := y.NewDoc("writer", true, y.DefaultGCFilter, nil, false)
	return &docWriter{doc: d, sv: y.EncodeStateVector(d, nil, y.NewUpdateEncoderV1())}
}

func (w *docWriter) insert(name, text string) []byte {
	ycrdtMu.Lock()
	defer ycrdtMu.Unlock()
	txt := w.doc.GetText(name)
	txt.Insert(txt.Length(), text, nil)
	u := y.EncodeStateAsUpdate(w.doc, w.sv)
	w.sv = y.EncodeStateVector(w.doc, nil, y.NewUpdateEncoderV1())
	return u
}

// textOf applies an update to a fresh y-crdt doc and reads a text.
func textOf(t *testing.T, update []byte, name string) string {
	t.Helper()
	ycrdtMu.Lock()
	defer ycrdtMu.Unlock()
	d := y.NewDoc("reader", true, y.DefaultGCFilter, nil, false)
	y.ApplyUpdate(d, update, nil)
	return d.GetText(name).ToString()
}

func (c *client) fullState() []byte {
	c.t.Helper()
	c.send(yproto.AppendSyncStep1(nil, []byte{0}))
	return c.next(isSync(yproto.SyncStep2)).Payload
}

func TestGreetingAndSync(t *testing.T) {
	hub := newTestHub(t, t.TempDir(), Options{})
	url := testServer(t, hub)

	a := dial(t, url+"/greet")
	step1 := a.next(isSync(yproto.SyncStep1))
	if string(step1.Payload) != "\x00" {
		t.Fatalf("empty room's state vector = %x", step1.Payload)
	}
	w := newDocWriter()
	a.send(yproto.AppendSyncUpdate(nil, w.insert("t", "hello")))
	// Messages of one connection are handled in order: once a's step 1 is
	// answered, its update is in the room.
	if got := textOf(t, a.fullState(), "t"); got != "hello" {
		t.Fatalf("room state after the update reads %q", got)
	}

	b := dial(t, url+"/greet")
	b.next(isSync(yproto.SyncStep1))
	if got := textOf(t, b.fullState(), "t"); got != "hello" {
		t.Fatalf("late joiner sees %q", got)
	}
	a.send(yproto.AppendSyncUpdate(nil, w.insert("t", " world")))
	relayed := b.next(isSync(yproto.SyncUpdate))
	if got := textOf(t, relayed.Payload, "t"); got != "" && got != " world" {
		t.Fatalf("relayed update reads %q", got)
	}
}

// Many clients in several rooms write concurrently; every client must see
// every update of its room and nothing of the others, and the stored state
// must hold it all.
//
// It runs under each fsync policy: under "always", updates are relayed by
// group commit, and compaction must wait for a moment with none pending.
func TestConcurrentRooms(t *testing.T) {
	for _, mode := range []FsyncMode{FsyncNever, FsyncInterval, FsyncAlways} {
		t.Run(mode.String(), func(t *testing.T) {
			testConcurrentRooms(t, FsyncPolicy{Mode: mode, Interval: 20 * time.Millisecond})
		})
	}
}

func testConcurrentRooms(t *testing.T, policy FsyncPolicy) {
	const rooms, perRoom, edits = 4, 6, 30
	dir := t.TempDir()
	hub := newTestHub(t, dir, Options{CompactRecords: 50, Fsync: policy})
	url := testServer(t, hub)

	type peer struct {
		c *client
		w *docWriter
	}
	peers := make([][]peer, rooms)
	for r := range peers {
		for range perRoom {
			c := dial(t, fmt.Sprintf("%s/room-%d", url, r))
			c.next(isSync(yproto.SyncStep1))
			peers[r] = append(peers[r], peer{c, newDocWriter()})
		}
	}
	// Pre-generate the updates (y-crdt is serialised), then send them all
	// at once from every peer.
	updates := make([][][][]byte, rooms)
	for r := range peers {
		updates[r] = make([][][]byte, perRoom)
		for i, p := range peers[r] {
			for e := range edits {
				updates[r][i] = append(updates[r][i], p.w.insert(fmt.Sprintf("p%d", i), fmt.Sprintf("<%d>", e)))
			}
		}
	}
	var wg sync.WaitGroup
	for r := range peers {
		for i, p := range peers[r] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, u := range updates[r][i] {
					if err := p.c.ws.Write(context.Background(), MessageBinary, yproto.AppendSyncUpdate(nil, u)); err != nil {
						t.Errorf("write: %v", err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	for r := range peers {
		for _, p := range peers[r] {
			for range (perRoom - 1) * edits {
				p.c.next(isSync(yproto.SyncUpdate))
			}
		}
	}
	wantText := ""
	for e := range edits {
		wantText += fmt.Sprintf("<%d>", e)
	}
	for r := range peers {
		state := peers[r][0].c.fullState()
		for i := range perRoom {
			if got := textOf(t, state, fmt.Sprintf("p%d", i)); got != wantText {
				t.Fatalf("room %d text p%d = %q, want %q", r, i, got, wantText)
			}
		}
		// Nothing leaked in from the other rooms: exactly perRoom writers.
		info, err := yproto.ValidateUpdate(state, yproto.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if len(info.Structs) != perRoom {
			t.Fatalf("room %d holds structs of %d clients, want %d", r, len(info.Structs), perRoom)
		}
	}

	// The files hold it all too, once the hub has shut down.
	hub.Close()
	store, err := storage.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	for r := range rooms {
		opened, err := store.Open(fmt.Sprintf("room-%d", r))
		if err != nil {
			t.Fatal(err)
		}
		opened.Log.Close()
		records := opened.Updates
		if len(records) != 1 {
			t.Errorf("room %d: %d records after shutdown, want 1 (compacted)", r, len(records))
		}
		for i := range perRoom {
			if got := textOf(t, records[0], fmt.Sprintf("p%d", i)); got != wantText {
				t.Errorf("room %d file: text p%d = %q, want %q", r, i, got, wantText)
			}
		}
	}
}

// randomEdits returns the incremental updates of clients y-crdt docs making
// n random edits: text inserts and deletes and map overwrites, with the
// docs exchanging their state now and then so edits build on each other.
func randomEdits(t *testing.T, clients, n int) [][]byte {
	t.Helper()
	ycrdtMu.Lock()
	defer ycrdtMu.Unlock()
	rng := rand.New(rand.NewPCG(uint64(clients), uint64(n)))
	docs := make([]*y.Doc, clients)
	svs := make([][]byte, clients)
	for i := range docs {
		docs[i] = y.NewDoc(fmt.Sprintf("d%d", i), true, y.DefaultGCFilter, nil, false)
		svs[i] = y.EncodeStateVector(docs[i], nil, y.NewUpdateEncoderV1())
	}
	var updates [][]byte
	for step := range n {
		i := rng.IntN(clients)
		d := docs[i]
		txt := d.GetText("t")
		switch l := txt.Length(); {
		case l > 4 && rng.IntN(4) == 0:
			txt.Delete(rng.IntN(l-2), 2)
		case rng.IntN(5) == 0:
			d.GetMap("m").(*y.YMap).Set(fmt.Sprintf("k%d", rng.IntN(10)), step)
		default:
			txt.Insert(rng.IntN(l+1), string(rune('a'+step%26)), nil)
		}
		updates = append(updates, y.EncodeStateAsUpdate(d, svs[i]))
		svs[i] = y.EncodeStateVector(d, nil, y.NewUpdateEncoderV1())
		if rng.IntN(40) == 0 {
			j := rng.IntN(clients)
			y.ApplyUpdate(docs[j], y.EncodeStateAsUpdate(d, nil), nil)
			svs[j] = y.EncodeStateVector(docs[j], nil, y.NewUpdateEncoderV1())
		}
	}
	return updates
}

// readDoc applies updates to a fresh y-crdt doc and returns its text "t",
// its map "m" as JSON and its state vector (printed as a sorted map).
func readDoc(t *testing.T, updates ...[]byte) (text, mapJSON, sv string) {
	t.Helper()
	ycrdtMu.Lock()
	defer ycrdtMu.Unlock()
	d := y.NewDoc("reader", true, y.DefaultGCFilter, nil, false)
	for _, u := range updates {
		y.ApplyUpdate(d, u, nil)
	}
	m, err := json.Marshal(d.GetMap("m").(*y.YMap).ToJson())
	if err != nil {
		t.Fatal(err)
	}
	// The encoding orders clients as a Go map iterates: compare decoded.
	svMap, err := yproto.ValidateStateVector(y.EncodeStateVector(d, nil, y.NewUpdateEncoderV1()))
	if err != nil {
		t.Fatal(err)
	}
	return d.GetText("t").ToString(), string(m), fmt.Sprint(svMap)
}

// A step 2 that repeats what the room has (a reconnecting client sends its
// whole document) is neither stored nor relayed; one with something new is
// both. The check uses the coverage refreshState computes unlocked.
func TestRepeatedStep2IsNotStored(t *testing.T) {
	dir := t.TempDir()
	hub := newTestHub(t, dir, Options{})
	url := testServer(t, hub)
	a := dial(t, url+"/again")
	a.next(isSync(yproto.SyncStep1))
	w := newDocWriter()
	var sent [][]byte
	for _, s := range []string{"one ", "two ", "three"} {
		u := w.insert("t", s)
		sent = append(sent, u)
		a.send(yproto.AppendSyncUpdate(nil, u))
	}
	a.fullState() // the updates are in the room
	b := dial(t, url+"/again")
	b.next(isSync(yproto.SyncStep1))
	b.fullState()

	records := func() int {
		r, err := hub.acquire("again")
		if err != nil {
			t.Fatal(err)
		}
		defer hub.release(r)
		return r.log.Stats().Records
	}
	before := records()
	whole, err := yref.Merge(sent)
	if err != nil {
		t.Fatal(err)
	}
	a.send(yproto.AppendSyncStep2(nil, whole))
	a.fullState() // handled in order: the step 2 is behind us
	if got := records(); got != before {
		t.Fatalf("a repeated step 2 was stored: %d records, %d before", got, before)
	}
	more := w.insert("t", "!")
	a.send(yproto.AppendSyncStep2(nil, more))
	relayed := b.next(isSync(yproto.SyncUpdate))
	if !bytes.Equal(relayed.Payload, more) {
		t.Fatalf("b got %x, want the new step 2's update %x", relayed.Payload, more)
	}
	if got := records(); got != before+1 {
		t.Fatalf("a new step 2 left %d records, want %d", got, before+1)
	}
}
