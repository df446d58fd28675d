package cluster

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/caddy-wiredb/wiredb/internal/wstransport"
	"github.com/caddy-wiredb/wiredb/roomhub"
	"github.com/caddy-wiredb/wiredb/yproto"
)

// Hubs in cluster mode, each behind its own HTTP server with the real
// WebSocket transport, sharing one Redis and one directory: what Caddy
// instances do, without Caddy.

type testHub struct {
	hub *roomhub.Hub
	rc  *Redis
	url string
}

func startHub(t *testing.T, srv *redisServer, instance, dir string, opts Options, hopts roomhub.Options) *testHub {
	t.Helper()
	rc := newTestRedis(t, srv, instance, opts)
	hub := roomhub.New(nil, hopts)
	hub.SetCluster(rc.ForDir(dir), rc.Instance())
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := hub.Healthy(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		c, err := wstransport.Accept(w, r, wstransport.Options{})
		if err != nil {
			return
		}
		hub.StartWith(c, roomhub.StartOptions{
			Protocols: roomhub.ProtocolSet(roomhub.ProtocolYWebsocket, roomhub.ProtocolHocuspocus),
			Room:      strings.TrimPrefix(r.URL.Path, "/"),
		})
	}))
	// Cleanups run last-in first-out: the HTTP server, then the hub, then
	// (registered by newTestRedis) the Redis client.
	t.Cleanup(func() { hub.Close() })
	t.Cleanup(hs.Close)
	return &testHub{hub: hub, rc: rc, url: "ws" + strings.TrimPrefix(hs.URL, "http")}
}

// wsClient is a y-websocket client that keeps what it receives.
type wsClient struct {
	c      *websocket.Conn
	mu     sync.Mutex
	msgs   []roomhub.Op
	closed error
	done   chan struct{}
}

func dialClient(t *testing.T, url string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(-1)
	wc := &wsClient{c: c, done: make(chan struct{})}
	go func() {
		defer close(wc.done)
		for {
			_, msg, err := c.Read(context.Background())
			if err != nil {
				wc.mu.Lock()
				wc.closed = err
				wc.mu.Unlock()
				return
			}
			op, err := roomhub.YWebsocket.Decode(msg)
			if err != nil {
				continue
			}
			op.Payload = append([]byte(nil), op.Payload...)
			wc.mu.Lock()
			wc.msgs = append(wc.msgs, op)
			wc.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.CloseNow(); <-wc.done })
	// Synced, as a y-websocket client: its step 1, and the room's step 2.
	wc.send(t, yproto.AppendSyncStep1(nil, []byte{0}))
	waitFor(t, 5*time.Second, "the room's sync step 2", func() bool {
		wc.mu.Lock()
		defer wc.mu.Unlock()
		for _, op := range wc.msgs {
			if op.Kind == roomhub.OpSyncStep2 {
				return true
			}
		}
		return wc.closed != nil
	})
	return wc
}

func (c *wsClient) send(t *testing.T, msg []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.c.Write(ctx, websocket.MessageBinary, msg); err != nil {
		t.Fatal(err)
	}
}

// updates returns every update the client received (step 2s and updates).
func (c *wsClient) updates() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	var us [][]byte
	for _, op := range c.msgs {
		if op.Kind == roomhub.OpSyncStep2 || op.Kind == roomhub.OpUpdate {
			us = append(us, op.Payload)
		}
	}
	return us
}

func (c *wsClient) awareness() []yproto.AwarenessEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	var es []yproto.AwarenessEntry
	for _, op := range c.msgs {
		if op.Kind == roomhub.OpAwareness {
			e, _ := yproto.DecodeAwarenessUpdate(op.Payload, 0)
			es = append(es, e...)
		}
	}
	return es
}

func (c *wsClient) closeStatus() websocket.StatusCode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return websocket.CloseStatus(c.closed)
}

// stateOf is what a client has: the merge of what it received, as one
// state vector (decoded to client -> clock).
func stateOf(t *testing.T, us [][]byte) map[uint64]uint64 {
	t.Helper()
	if len(us) == 0 {
		return map[uint64]uint64{}
	}
	merged, err := yproto.MergeUpdates(us)
	if err != nil {
		t.Fatal(err)
	}
	info, err := yproto.ValidateUpdate(merged, yproto.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	sv := map[uint64]uint64{}
	for _, s := range info.Structs {
		if s.End > sv[s.Client] {
			sv[s.Client] = s.End
		}
	}
	return sv
}

func hasClients(sv map[uint64]uint64, from, to uint64) bool {
	for c := from; c <= to; c++ {
		if sv[c] == 0 {
			return false
		}
	}
	return true
}

// Updates sent through one hub reach clients of another, never echo back to
// their sender, and a late joiner on a third hub gets them all.
func TestHubsShareRooms(t *testing.T) {
	srv := startRedis(t)
	dir := t.TempDir()
	a := startHub(t, srv, "a", dir, Options{}, roomhub.Options{CompactRecords: 7})
	b := startHub(t, srv, "b", dir, Options{}, roomhub.Options{CompactRecords: 7})
	ca := dialClient(t, a.url+"/doc")
	cb := dialClient(t, b.url+"/doc")
	for i := uint64(1); i <= 20; i++ {
		c := ca
		if i%2 == 0 {
			c = cb
		}
		c.send(t, yproto.AppendSyncUpdate(nil, update(i)))
	}
	defer func() {
		if t.Failed() {
			t.Logf("a has %v\nb has %v", stateOf(t, ca.updates()), stateOf(t, cb.updates()))
		}
	}()
	waitFor(t, 5*time.Second, "both clients to get the other's updates", func() bool {
		sa, sb := stateOf(t, ca.updates()), stateOf(t, cb.updates())
		for i := uint64(1); i <= 20; i++ {
			if i%2 == 0 && sa[i] == 0 || i%2 == 1 && sb[i] == 0 {
				return false
			}
		}
		return true
	})
	time.Sleep(100 * time.Millisecond)
	for i, u := range ca.updates() {
		if sv := stateOf(t, [][]byte{u}); len(sv) == 1 && sv[1] != 0 && i > 0 {
			t.Fatalf("a's own update was echoed back to it")
		}
	}
	// Both hubs compacted their memory, the lease holder by checkpoints,
	// the other by folding: neither keeps the 20 updates as they came.
	for _, h := range []*testHub{a, b} {
		waitFor(t, 5*time.Second, "the room's memory to be compacted", func() bool {
			rooms := h.hub.Rooms()
			if len(rooms) == 1 && rooms[0].TailUpdates < 7 {
				return true
			}
			t.Logf("%s: %+v", h.rc.Instance(), rooms)
			return false
		})
	}
	c := startHub(t, srv, "c", dir, Options{}, roomhub.Options{})
	cc := dialClient(t, c.url+"/doc")
	waitFor(t, 5*time.Second, "the late joiner on a third hub to get every update", func() bool {
		return hasClients(stateOf(t, cc.updates()), 1, 20)
	})
}

// The subscription of one hub is cut while another hub's client writes: the
// hub notices, resubscribes and repairs the gap from the stream, so its
// client misses nothing.
func TestHubRepairsLostSubscription(t *testing.T) {
	srv := startRedis(t)
	dir := t.TempDir()
	a := startHub(t, srv, "a", dir, Options{}, roomhub.Options{})
	b := startHub(t, srv, "b", dir, Options{SubscriptionGrace: time.Minute}, roomhub.Options{})
	ca := dialClient(t, a.url+"/doc")
	cb := dialClient(t, b.url+"/doc")
	ca.send(t, yproto.AppendSyncUpdate(nil, update(1)))
	waitFor(t, 5*time.Second, "the first update", func() bool { return stateOf(t, cb.updates())[1] != 0 })
	rc := srv.client(t)
	// Cut b's subscription and write once while it reconnects (it waits at
	// least 50 ms): only the repair on resubscription can bring update 2.
	if err := rc.Do(ctx(t), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	ca.send(t, yproto.AppendSyncUpdate(nil, update(2)))
	waitFor(t, 10*time.Second, "b's client to get the update sent while its hub was unsubscribed",
		func() bool { return stateOf(t, cb.updates())[2] != 0 })
	// Again, writing on: a later batch shows the gap, which is repaired too.
	if err := rc.Do(ctx(t), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	for i := uint64(3); i <= 50; i++ {
		ca.send(t, yproto.AppendSyncUpdate(nil, update(i)))
		time.Sleep(time.Millisecond)
	}
	waitFor(t, 10*time.Second, "b's client to get every update", func() bool { return hasClients(stateOf(t, cb.updates()), 1, 50) })
	if cb.closeStatus() != -1 {
		t.Fatalf("b's client was closed: %v", cb.closeStatus())
	}
}

// Redis down: the hub says so (the handler answers 503), and an update the
// log cannot take closes its sender with 1011; the subscription lost past
// the grace closes the room's clients with 1013. After Redis is back, a new
// client gets everything acknowledged before.
func TestHubFailsClosedWhileRedisIsDown(t *testing.T) {
	srv := startRedis(t)
	dir := t.TempDir()
	opts := Options{Timeout: 500 * time.Millisecond, SubscriptionGrace: 2 * time.Second}
	a := startHub(t, srv, "a", dir, opts, roomhub.Options{})
	writer := dialClient(t, a.url+"/doc")
	reader := dialClient(t, a.url+"/doc")
	writer.send(t, yproto.AppendSyncUpdate(nil, update(1)))
	waitFor(t, 5*time.Second, "the acknowledged update", func() bool { return stateOf(t, reader.updates())[1] != 0 })
	srv.kill()
	waitFor(t, 5*time.Second, "the hub to report Redis down", func() bool { return a.hub.Healthy() != nil })
	writer.send(t, yproto.AppendSyncUpdate(nil, update(2)))
	waitFor(t, 5*time.Second, "the writer closed with 1011", func() bool { return writer.closeStatus() == websocket.StatusInternalError })
	waitFor(t, 5*time.Second, "the reader closed with 1013 after the grace", func() bool { return reader.closeStatus() == websocket.StatusTryAgainLater })
	if _, _, err := websocket.Dial(ctx(t), a.url+"/doc", nil); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("a join while Redis is down: %v", err)
	}
	srv.start()
	waitFor(t, 10*time.Second, "the hub to be healthy again", func() bool { return a.hub.Healthy() == nil })
	fresh := dialClient(t, a.url+"/doc")
	waitFor(t, 5*time.Second, "the fresh client to get the acknowledged update", func() bool { return stateOf(t, fresh.updates())[1] != 0 })
	if stateOf(t, fresh.updates())[2] != 0 {
		t.Fatal("the update Redis never took reached a client")
	}
}

// Awareness crosses hubs, and a client's removal reaches the other hub when
// it disconnects.
func TestHubAwarenessAcrossInstances(t *testing.T) {
	srv := startRedis(t)
	dir := t.TempDir()
	a := startHub(t, srv, "a", dir, Options{}, roomhub.Options{})
	b := startHub(t, srv, "b", dir, Options{}, roomhub.Options{})
	ca := dialClient(t, a.url+"/doc")
	cb := dialClient(t, b.url+"/doc")
	ca.send(t, yproto.AppendAwareness(nil, yproto.AppendAwarenessUpdate(nil,
		[]yproto.AwarenessEntry{{ClientID: 77, Clock: 1, State: []byte(`{"name":"ann"}`)}})))
	waitFor(t, 5*time.Second, "b's client to see ann", func() bool {
		for _, e := range cb.awareness() {
			if e.ClientID == 77 && string(e.State) == `{"name":"ann"}` {
				return true
			}
		}
		return false
	})
	// A client joining b later gets ann in its greeting.
	late := dialClient(t, b.url+"/doc")
	waitFor(t, 5*time.Second, "the late client to see ann", func() bool { return len(late.awareness()) == 1 })
	ca.c.Close(websocket.StatusNormalClosure, "bye")
	waitFor(t, 5*time.Second, "b's client to see ann leave", func() bool {
		for _, e := range cb.awareness() {
			if e.ClientID == 77 && e.Removed() {
				return true
			}
		}
		return false
	})
}

// hpClient is a raw Hocuspocus provider of one document.
type hpClient struct {
	c    *websocket.Conn
	mu   sync.Mutex
	msgs []yproto.HocuspocusMessage // as a provider would read them (types it receives)
	raw  [][]byte
	done chan struct{}
}

func dialHocuspocus(t *testing.T, url, name string) *hpClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	hc := &hpClient{c: c, done: make(chan struct{})}
	go func() {
		defer close(hc.done)
		for {
			_, msg, err := c.Read(context.Background())
			if err != nil {
				return
			}
			hc.mu.Lock()
			hc.raw = append(hc.raw, msg)
			hc.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.CloseNow(); <-hc.done })
	auth := append(yproto.AppendVarString(nil, name), byte(yproto.HocuspocusAuth), 0, 0)
	hc.send(t, yproto.AppendVarString(auth, "4.8.0"))
	hc.send(t, yproto.AppendSyncStep1(yproto.AppendVarString(nil, name), []byte{0}))
	waitFor(t, 5*time.Second, "the document's sync step 2", func() bool {
		return hc.count(yproto.HocuspocusSync, yproto.SyncStep2) > 0
	})
	return hc
}

func (c *hpClient) send(t *testing.T, msg []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.c.Write(ctx, websocket.MessageBinary, msg); err != nil {
		t.Fatal(err)
	}
}

// count counts the received messages of a type (and, for sync, sub-type).
func (c *hpClient) count(typ yproto.HocuspocusType, sync yproto.SyncType) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, m := range c.raw {
		if t, s, ok := yproto.HocuspocusKind(m); ok && t == typ && (t != yproto.HocuspocusSync || s == sync) {
			n++
		}
	}
	return n
}

// Hocuspocus providers on two instances share a document: an update is
// acknowledged to its sender and reaches the other instance's provider,
// and stateless messages cross instances too, but not back to their sender.
func TestHubHocuspocusAcrossInstances(t *testing.T) {
	srv := startRedis(t)
	dir := t.TempDir()
	a := startHub(t, srv, "a", dir, Options{}, roomhub.Options{})
	b := startHub(t, srv, "b", dir, Options{}, roomhub.Options{})
	pa := dialHocuspocus(t, a.url+"/", "doc")
	pb := dialHocuspocus(t, b.url+"/", "doc")
	update := []byte{1, 1, 1, 0, 4, 1, 1, 't', 2, 'h', 'i', 0}
	pa.send(t, yproto.AppendSyncUpdate(yproto.AppendVarString(nil, "doc"), update))
	waitFor(t, 5*time.Second, "the sender's SyncStatus", func() bool { return pa.count(yproto.HocuspocusSyncStatus, 0) == 1 })
	waitFor(t, 5*time.Second, "the update on the other instance", func() bool {
		return pb.count(yproto.HocuspocusSync, yproto.SyncUpdate) == 1
	})
	pa.send(t, yproto.AppendHocuspocusStateless(nil, "doc", []byte(`{"cursor":3}`)))
	waitFor(t, 5*time.Second, "the stateless message on the other instance", func() bool {
		return pb.count(yproto.HocuspocusStateless, 0) == 1
	})
	pb.mu.Lock()
	var got []byte
	for _, m := range pb.raw {
		if typ, _, _ := yproto.HocuspocusKind(m); typ == yproto.HocuspocusStateless {
			got = m
		}
	}
	pb.mu.Unlock()
	if want := yproto.AppendHocuspocusStateless(nil, "doc", []byte(`{"cursor":3}`)); string(got) != string(want) {
		t.Fatalf("stateless message % x, want % x", got, want)
	}
	// An update after it reaches the sender's instance's other side only
	// once the stateless message would have: the sender never gets it.
	pb.send(t, yproto.AppendSyncUpdate(yproto.AppendVarString(nil, "doc"), []byte{1, 1, 2, 0, 4, 1, 1, 'u', 1, 'x', 0}))
	waitFor(t, 5*time.Second, "b's update at a", func() bool { return pa.count(yproto.HocuspocusSync, yproto.SyncUpdate) == 1 })
	if n := pa.count(yproto.HocuspocusStateless, 0); n != 0 {
		t.Fatalf("the sender got its stateless message back %d times", n)
	}
}
