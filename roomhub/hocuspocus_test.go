package roomhub

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-wiredb/wiredb/storage"
	"github.com/caddy-wiredb/wiredb/yproto"
)

// bothProtocols serves y-websocket and Hocuspocus on one socket, as a
// wiredb route does by default.
var bothProtocols = ProtocolSet(ProtocolYWebsocket, ProtocolHocuspocus)

// startSocket serves one in-memory socket on hub with so.
func startSocket(t *testing.T, hub *Hub, so StartOptions) *memClient {
	t.Helper()
	p := newMemPipe()
	if err := hub.StartWith(&memTransport{p: p}, so); err != nil {
		t.Fatal(err)
	}
	return &memClient{p: p}
}

// dialYWebsocket is dial for a socket served with so.
func dialYWebsocket(t *testing.T, hub *Hub, so StartOptions) *client {
	t.Helper()
	return newClient(t, startSocket(t, hub, so))
}

// hpMsg is one message a Hocuspocus provider received.
type hpMsg struct {
	name string
	typ  yproto.HocuspocusType
	y    yproto.Message // sync and awareness: the y-websocket message after the name
	sub  uint64         // auth: 1 permission denied, 2 authenticated
	text string         // auth: the reason or scope; stateless: the payload
	flag byte           // SyncStatus
}

// hpClient is a raw Hocuspocus provider that records what it receives.
type hpClient struct {
	t    *testing.T
	ws   *memClient
	msgs chan hpMsg
	done chan struct{}
	err  error
}

func dialHocuspocus(t *testing.T, hub *Hub, so StartOptions) *hpClient {
	t.Helper()
	ws := startSocket(t, hub, so)
	c := &hpClient{t: t, ws: ws, msgs: make(chan hpMsg, 100000), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			_, b, err := ws.Read(context.Background())
			if err != nil {
				c.err = err
				return
			}
			m, err := decodeServerHocuspocus(b)
			if err != nil {
				c.err = fmt.Errorf("server sent a malformed message % x: %w", b, err)
				return
			}
			c.msgs <- m
		}
	}()
	t.Cleanup(func() { ws.CloseNow(); <-c.done })
	return c
}

// decodeServerHocuspocus reads a message as @hocuspocus/provider does.
func decodeServerHocuspocus(b []byte) (hpMsg, error) {
	if len(b) == 1 {
		return hpMsg{typ: yproto.HocuspocusType(b[0])}, nil
	}
	n, w, err := yproto.ReadVarUint(b)
	if err != nil || uint64(len(b)-w) < n {
		return hpMsg{}, errors.New("bad name")
	}
	m := hpMsg{name: string(b[w : w+int(n)])}
	rest := b[w+int(n):]
	t, w, err := yproto.ReadVarUint(rest)
	if err != nil {
		return hpMsg{}, err
	}
	m.typ = yproto.HocuspocusType(t)
	body := rest[w:]
	switch m.typ {
	case yproto.HocuspocusSync, yproto.HocuspocusAwareness:
		m.y, err = yproto.DecodeMessage(rest)
	case yproto.HocuspocusAuth:
		if len(body) < 2 {
			return m, errors.New("short auth")
		}
		m.sub = uint64(body[0])
		m.text = string(body[2:])
	case yproto.HocuspocusStateless:
		m.text = string(body[1:])
	case yproto.HocuspocusSyncStatus:
		if len(body) != 1 {
			return m, errors.New("bad sync status")
		}
		m.flag = body[0]
	default:
		return m, fmt.Errorf("type %d", t)
	}
	return m, err
}

func (c *hpClient) send(frame []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, MessageBinary, frame); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// auth sends what a 4.x provider sends first for a document.
func (c *hpClient) auth(name, token, version string) {
	c.t.Helper()
	frame := yproto.AppendVarString(nil, name)
	frame = append(frame, byte(yproto.HocuspocusAuth), 0)
	frame = yproto.AppendVarString(frame, token)
	if version != "" {
		frame = yproto.AppendVarString(frame, version)
	}
	c.send(frame)
}

// open authenticates a document and waits for the answer and the greeting.
func (c *hpClient) open(name string) hpMsg {
	c.t.Helper()
	c.auth(name, "", "4.8.0")
	a := c.next(func(m hpMsg) bool { return m.name == name && m.typ == yproto.HocuspocusAuth })
	c.next(hpSync(name, yproto.SyncStep1))
	return a
}

func (c *hpClient) next(keep func(hpMsg) bool) hpMsg {
	c.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-c.msgs:
			if keep(m) {
				return m
			}
		case <-c.done:
			c.t.Fatalf("connection ended: %v", c.err)
		case <-deadline:
			c.t.Fatal("timed out waiting for a message")
		}
	}
}

func (c *hpClient) closed() (StatusCode, string) {
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

func hpSync(name string, st yproto.SyncType) func(hpMsg) bool {
	return func(m hpMsg) bool {
		return m.name == name && m.typ == yproto.HocuspocusSync && m.y.Sync == st
	}
}

func hpType(name string, t yproto.HocuspocusType) func(hpMsg) bool {
	return func(m hpMsg) bool { return m.name == name && m.typ == t }
}

// Under fsync always, a provider's update is acknowledged only once the
// fsync that makes it durable returned: SyncStatus means "on disk".
func TestHocuspocusAcknowledgesAfterFsync(t *testing.T) {
	dir := t.TempDir()
	hub := newTestHub(t, dir, Options{Fsync: FsyncPolicy{Mode: FsyncAlways}})
	so := StartOptions{Protocols: bothProtocols}
	p := dialHocuspocus(t, hub, so)
	if a := p.open("doc"); a.sub != 2 || a.text != "read-write" {
		t.Fatalf("auth answer %+v, want authenticated read-write", a)
	}
	codec := hocuspocusCodec{"doc"}
	// The provider's step 2 answering the server's step 1 has nothing:
	// acknowledged at once.
	p.send(codec.AppendSyncStep2(nil, emptyUpdate))
	if m := p.next(hpType("doc", yproto.HocuspocusSyncStatus)); m.flag != 1 {
		t.Fatalf("SyncStatus %d for an empty step 2, want 1", m.flag)
	}

	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	defer unblock() // before the hub's Close, which waits for the fsync
	syncing := make(chan struct{}, 1)
	hold := func() {
		select {
		case syncing <- struct{}{}:
		default:
		}
		<-release
	}
	testStoreOf(hub).beforeSync.Store(&hold)
	update := newDocWriter().insert("t", "durable")
	p.send(codec.AppendUpdate(nil, update))
	<-syncing // the group commit is in its fsync
	select {
	case m := <-p.msgs:
		t.Fatalf("received %+v while the fsync had not returned", m)
	case <-time.After(100 * time.Millisecond):
	}
	testStoreOf(hub).beforeSync.Store(nil)
	unblock()
	if m := p.next(hpType("doc", yproto.HocuspocusSyncStatus)); m.flag != 1 {
		t.Fatalf("SyncStatus %d for a stored update, want 1", m.flag)
	}
	if testStoreOf(hub).fsyncs.Load() == 0 {
		t.Fatal("acknowledged before any fsync")
	}
	data, err := os.ReadFile(filepath.Join(dir, "doc.y"))
	if err != nil || !strings.Contains(string(data), string(update)) {
		t.Fatalf("the file lacks the acknowledged update (%v)", err)
	}
}

// A provider and a y-websocket client share a room: updates and awareness
// cross, each in its own protocol, and stateless messages reach only the
// other Hocuspocus connections.
func TestHocuspocusSharesRoomsWithYWebsocket(t *testing.T) {
	hub := newTestHub(t, t.TempDir(), Options{})
	p := dialHocuspocus(t, hub, StartOptions{Protocols: bothProtocols})
	p.open("team/notes")
	q := dialHocuspocus(t, hub, StartOptions{Protocols: bothProtocols})
	q.open("team/notes")
	y := dialYWebsocket(t, hub, StartOptions{Protocols: bothProtocols, Room: "team/notes"})
	select {
	case m := <-y.msgs:
		t.Fatalf("the server spoke first (%v): a client's first message tells its protocol", m.Type)
	case <-time.After(50 * time.Millisecond):
	}
	y.send(yproto.AppendSyncStep1(nil, []byte{0}))
	y.next(isSync(yproto.SyncStep1))
	y.next(isSync(yproto.SyncStep2))

	w := newDocWriter()
	codec := hocuspocusCodec{"team/notes"}
	p.send(codec.AppendUpdate(nil, w.insert("t", "from hocuspocus")))
	if got := textOf(t, y.next(isSync(yproto.SyncUpdate)).Payload, "t"); got != "from hocuspocus" {
		t.Fatalf("y-websocket client got %q", got)
	}
	q.next(hpSync("team/notes", yproto.SyncUpdate))
	y.send(yproto.AppendSyncUpdate(nil, w.insert("t", "!")))
	if got := textOf(t, p.next(hpSync("team/notes", yproto.SyncUpdate)).y.Payload, "t"); got != "" && got != "!" {
		t.Fatalf("provider got %q", got)
	}

	aw := yproto.AppendAwarenessUpdate(nil, []yproto.AwarenessEntry{{ClientID: 7, Clock: 1, State: []byte(`{"user":"p"}`)}})
	p.send(codec.AppendAwareness(nil, aw))
	if m := y.next(isAwareness); string(m.Payload) != string(aw) {
		t.Fatalf("y-websocket client got awareness % x", m.Payload)
	}
	p.next(hpType("team/notes", yproto.HocuspocusAwareness)) // echoed: keeps a lone provider alive
	yaw := yproto.AppendAwarenessUpdate(nil, []yproto.AwarenessEntry{{ClientID: 8, Clock: 1, State: []byte(`{"user":"y"}`)}})
	y.send(yproto.AppendAwareness(nil, yaw))
	// (q got p's entry first; it must get the y-websocket client's too)
	q.next(func(m hpMsg) bool {
		return m.name == "team/notes" && m.typ == yproto.HocuspocusAwareness && string(m.y.Payload) == string(yaw)
	})

	p.send(codec.AppendStateless(nil, []byte("ping from p")))
	if m := q.next(hpType("team/notes", yproto.HocuspocusStateless)); m.text != "ping from p" {
		t.Fatalf("stateless payload %q", m.text)
	}
	// The sender does not get it back, nor does the y-websocket client:
	// an update sent after it arrives first.
	p.send(codec.AppendUpdate(nil, w.insert("t", "?")))
	y.next(isSync(yproto.SyncUpdate))
	q.next(hpSync("team/notes", yproto.SyncUpdate))
	p.send(codec.AppendSyncStep1(nil, []byte{0}))
	for {
		m := p.next(func(hpMsg) bool { return true })
		if m.typ == yproto.HocuspocusStateless {
			t.Fatal("the sender got its own stateless message back")
		}
		if m.typ == yproto.HocuspocusSync && m.y.Sync == yproto.SyncStep2 {
			break
		}
	}
}

// One socket carries two documents; closing one leaves the other, and what
// is sent for a closed document is dropped.
func TestHocuspocusMultiplexesDocuments(t *testing.T) {
	hub := newTestHub(t, t.TempDir(), Options{})
	so := StartOptions{Protocols: bothProtocols}
	p := dialHocuspocus(t, hub, so)
	p.open("a")
	p.open("b")
	other := dialHocuspocus(t, hub, so)
	other.open("a")
	other.open("b")

	w := newDocWriter()
	p.send(hocuspocusCodec{"a"}.AppendUpdate(nil, w.insert("t", "in a")))
	if m := other.next(hpType("a", yproto.HocuspocusSync)); textOf(t, m.y.Payload, "t") != "in a" {
		t.Fatal("document a's update did not reach a")
	}
	p.send([]byte{1, 'a', byte(yproto.HocuspocusClose)})
	p.send(hocuspocusCodec{"a"}.AppendUpdate(nil, w.insert("t", " after close")))
	p.send(hocuspocusCodec{"b"}.AppendUpdate(nil, newDocWriter().insert("t", "in b")))
	if m := other.next(hpType("b", yproto.HocuspocusSync)); textOf(t, m.y.Payload, "t") != "in b" {
		t.Fatal("document b's update did not reach b")
	}
	other.send(hocuspocusCodec{"a"}.AppendSyncStep1(nil, []byte{0}))
	if got := textOf(t, other.next(hpSync("a", yproto.SyncStep2)).y.Payload, "t"); got != "in a" {
		t.Fatalf("room a holds %q: an update for the closed document was applied", got)
	}
	if n := len(hub.Rooms()); n != 2 {
		t.Fatalf("%d rooms, want 2", n)
	}
	// Opened again on the same socket, the document syncs again.
	p.open("a")
}

// Tokens are decided per document; a refused document leaves the socket
// and its other documents working.
func TestHocuspocusAuthorization(t *testing.T) {
	dir := t.TempDir()
	hub := newTestHub(t, dir, Options{})
	so := StartOptions{Protocols: bothProtocols, Hocuspocus: HocuspocusOptions{
		MaxDocuments: 2,
		Authorize: func(name, token string) (DocumentAccess, error) {
			switch token {
			case "write":
				return DocumentAccess{Key: name}, nil
			case "read":
				return DocumentAccess{Key: name, ReadOnly: true}, nil
			}
			return DocumentAccess{}, errors.New("token does not grant room " + name)
		},
	}}
	p := dialHocuspocus(t, hub, so)
	p.auth("secret", "nope", "4.8.0")
	if m := p.next(hpType("secret", yproto.HocuspocusAuth)); m.sub != 1 || m.text != "token does not grant room secret" {
		t.Fatalf("answer %+v, want permission denied with the reason", m)
	}
	// What the provider sent without waiting is dropped, not stored.
	p.send(hocuspocusCodec{"secret"}.AppendUpdate(nil, newDocWriter().insert("t", "x")))

	p.auth("ro", "read", "")
	if m := p.next(hpType("ro", yproto.HocuspocusAuth)); m.sub != 2 || m.text != "readonly" {
		t.Fatalf("answer %+v, want authenticated readonly", m)
	}
	ro := hocuspocusCodec{"ro"}
	p.send(ro.AppendUpdate(nil, newDocWriter().insert("t", "refused")))
	if m := p.next(hpType("ro", yproto.HocuspocusSyncStatus)); m.flag != 0 {
		t.Fatal("a read-only document's update was acknowledged as applied")
	}
	p.send(ro.AppendSyncStep2(nil, emptyUpdate))
	if m := p.next(hpType("ro", yproto.HocuspocusSyncStatus)); m.flag != 1 {
		t.Fatal("a read-only document's step 2 with nothing new was not acknowledged as applied")
	}

	p.auth("rw", "write", "4.8.0")
	p.next(hpType("rw", yproto.HocuspocusAuth))
	p.auth("third", "write", "4.8.0")
	if m := p.next(hpType("third", yproto.HocuspocusAuth)); m.sub != 1 || !strings.Contains(m.text, "too many documents") {
		t.Fatalf("answer %+v, want too many documents", m)
	}
	rw := hocuspocusCodec{"rw"}
	p.send(rw.AppendUpdate(nil, newDocWriter().insert("t", "ok")))
	p.next(hpType("rw", yproto.HocuspocusSyncStatus))
	for _, key := range []string{"secret", "ro"} {
		file, _ := storage.FileName(key)
		if data, err := os.ReadFile(filepath.Join(dir, file)); err == nil && len(data) > len(storage.Header) {
			t.Fatalf("room %s stored %d bytes of refused writes", key, len(data)-len(storage.Header))
		}
	}
}

// A malformed frame closes its socket with a code and a reason; the room
// and its other clients go on.
func TestHocuspocusHostileFrames(t *testing.T) {
	name := yproto.AppendVarString(nil, "doc")
	for _, tc := range []struct {
		what   string
		typ    MessageType
		frame  []byte
		code   StatusCode
		reason string
	}{
		{"truncated name", MessageBinary, []byte{9, 'd', 'o'}, StatusInvalidFramePayloadData, "malformed message"},
		{"server-internal type", MessageBinary, append(append([]byte{}, name...), 4, 0), StatusUnsupportedData, "hocuspocus message type 4"},
		{"sync status from a client", MessageBinary, append(append([]byte{}, name...), 8, 1), StatusUnsupportedData, "unsupported message"},
		{"bad update", MessageBinary, append(append([]byte{}, name...), 0, 2, 3, 0xff, 0xff, 0xff), StatusInvalidFramePayloadData, "invalid update"},
		{"trailing bytes", MessageBinary, append(append([]byte{}, name...), 3, 0), StatusInvalidFramePayloadData, "trailing"},
		{"text frame", MessageText, []byte("hello"), StatusUnsupportedData, "text frames"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			hub := newTestHub(t, t.TempDir(), Options{})
			so := StartOptions{Protocols: bothProtocols}
			good := dialHocuspocus(t, hub, so)
			good.open("doc")
			w := newDocWriter()
			good.send(hocuspocusCodec{"doc"}.AppendUpdate(nil, w.insert("t", "kept")))
			good.next(hpType("doc", yproto.HocuspocusSyncStatus))

			bad := dialHocuspocus(t, hub, so)
			bad.open("doc")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := bad.ws.Write(ctx, tc.typ, tc.frame); err != nil {
				t.Fatal(err)
			}
			code, reason := bad.closed()
			if code != tc.code || !strings.Contains(reason, tc.reason) {
				t.Fatalf("closed with %d %q, want %d and a reason with %q", code, reason, tc.code, tc.reason)
			}
			good.send(hocuspocusCodec{"doc"}.AppendSyncStep1(nil, []byte{0}))
			if got := textOf(t, good.next(hpSync("doc", yproto.SyncStep2)).y.Payload, "t"); got != "kept" {
				t.Fatalf("room holds %q after the hostile frame", got)
			}
		})
	}
}

// The first message decides the protocol, and a route's restrictions close
// the socket once it has.
func TestProtocolDetection(t *testing.T) {
	hub := newTestHub(t, t.TempDir(), Options{PingInterval: 200 * time.Millisecond})
	step1 := yproto.AppendSyncStep1(nil, []byte{0})
	auth := append(yproto.AppendVarString(nil, "doc"), 2, 0, 0)
	for _, tc := range []struct {
		what   string
		so     StartOptions
		first  []byte
		code   StatusCode
		reason string
	}{
		{"y-websocket client needing a token", StartOptions{Protocols: bothProtocols, Room: "doc", RefuseYWebsocket: "missing token"},
			step1, StatusPolicyViolation, "missing token"},
		{"y-websocket client on a Hocuspocus route", StartOptions{Protocols: ProtocolSet(ProtocolHocuspocus)},
			step1, StatusPolicyViolation, "Hocuspocus providers only"},
		{"provider on a y-websocket route", StartOptions{Protocols: ProtocolSet(ProtocolYWebsocket), Room: "doc", RefuseYWebsocket: "x"},
			auth, StatusPolicyViolation, "does not serve Hocuspocus"},
		{"silent client", StartOptions{Protocols: bothProtocols, Room: "doc"}, nil, StatusPolicyViolation, "no message within"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			c := dialHocuspocus(t, hub, tc.so)
			if tc.first != nil {
				c.send(tc.first)
			}
			if code, reason := c.closed(); code != tc.code || !strings.Contains(reason, tc.reason) {
				t.Fatalf("closed with %d %q, want %d and %q", code, reason, tc.code, tc.reason)
			}
		})
	}
}

// A quiet socket gets a Ping if its provider reads them (4.x), and an
// empty awareness update otherwise: a provider drops a socket silent for
// 30 s.
func TestHocuspocusKeepalive(t *testing.T) {
	hub := newTestHub(t, t.TempDir(), Options{PingInterval: 50 * time.Millisecond})
	p := dialHocuspocus(t, hub, StartOptions{Protocols: bothProtocols})
	p.open("doc")
	p.next(func(m hpMsg) bool { return m.typ == yproto.HocuspocusPing && m.name == "" })
	p.send([]byte{byte(yproto.HocuspocusPong)})

	old := dialHocuspocus(t, hub, StartOptions{Protocols: bothProtocols})
	old.auth("doc", "", "") // before 4.x, no version: no Pings
	old.next(hpType("doc", yproto.HocuspocusAuth))
	m := old.next(func(m hpMsg) bool { return m.typ == yproto.HocuspocusPing || m.typ == yproto.HocuspocusAwareness })
	if m.typ != yproto.HocuspocusAwareness || string(m.y.Payload) != "\x00" {
		t.Fatalf("a pre-4.x provider got %+v, want an empty awareness update", m)
	}
}
