package roomhub

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-wiredb/wiredb/yproto"
)

func wantClose(t *testing.T, c *client, code StatusCode, reason string) {
	t.Helper()
	gotCode, gotReason := c.closed()
	if gotCode != code || !strings.Contains(gotReason, reason) {
		t.Fatalf("closed with %d %q, want %d and a reason with %q", gotCode, gotReason, code, reason)
	}
}

// stillRelays checks that a and b, in one room, still exchange updates.
func stillRelays(t *testing.T, a, b *client, w *docWriter) {
	t.Helper()
	a.send(yproto.AppendSyncUpdate(nil, w.insert("t", "ok")))
	b.next(isSync(yproto.SyncUpdate))
}

func TestMaxRooms(t *testing.T) {
	hub := newTestHub(t, t.TempDir(), Options{MaxRooms: 2})
	url := testServer(t, hub)
	a := dial(t, url+"/one")
	a.next(isSync(yproto.SyncStep1))
	b := dial(t, url+"/two")
	b.next(isSync(yproto.SyncStep1))
	third := dial(t, url+"/three")
	wantClose(t, third, StatusTryAgainLater, "too many rooms")
	// Rooms already open still take joins.
	again := dial(t, url+"/one")
	again.next(isSync(yproto.SyncStep1))
	stillRelays(t, again, a, newDocWriter())
}

func TestMaxConnsPerRoom(t *testing.T) {
	hub := newTestHub(t, t.TempDir(), Options{MaxConnsPerRoom: 2})
	url := testServer(t, hub)
	a, b := dial(t, url+"/r"), dial(t, url+"/r")
	a.next(isSync(yproto.SyncStep1))
	b.next(isSync(yproto.SyncStep1))
	wantClose(t, dial(t, url+"/r"), StatusTryAgainLater, "room full")
	other := dial(t, url+"/other") // another room is not full
	other.next(isSync(yproto.SyncStep1))
	stillRelays(t, a, b, newDocWriter())
}

// An update that would take the document past MaxDocumentSize is refused
// with 1008; the room, its file and its other clients keep what they had.
func TestMaxDocumentSize(t *testing.T) {
	dir := t.TempDir()
	hub := newTestHub(t, dir, Options{MaxDocumentSize: 4 << 10, Fsync: FsyncPolicy{Mode: FsyncAlways}})
	url := testServer(t, hub)
	a, b := dial(t, url+"/doc"), dial(t, url+"/doc")
	a.next(isSync(yproto.SyncStep1))
	b.next(isSync(yproto.SyncStep1))
	w := newDocWriter()
	a.send(yproto.AppendSyncUpdate(nil, w.insert("t", strings.Repeat("a", 3<<10))))
	b.next(isSync(yproto.SyncUpdate))
	path := filepath.Join(dir, "doc.y")
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	a.send(yproto.AppendSyncUpdate(nil, w.insert("t", strings.Repeat("b", 2<<10))))
	wantClose(t, a, StatusPolicyViolation, "document size limit")
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatalf("the refused update changed the file: %d bytes, then %d", len(before), len(after))
	}
	if got := textOf(t, b.fullState(), "t"); got != strings.Repeat("a", 3<<10) {
		t.Fatalf("room holds %d characters after the refusal, want %d", len(got), 3<<10)
	}
	// Small edits still fit.
	c := dial(t, url+"/doc")
	c.next(isSync(yproto.SyncStep1))
	stillRelays(t, c, b, newDocWriter())
}

func TestRateLimit(t *testing.T) {
	hub := newTestHub(t, t.TempDir(), Options{})
	srvURL := testServerWith(t, hub, ConnOptions{RateLimit: RateLimit{MessagesPerSecond: 20}})
	flood, calm := dial(t, srvURL+"/r"), dial(t, srvURL+"/r")
	flood.next(isSync(yproto.SyncStep1))
	calm.next(isSync(yproto.SyncStep1))
	// A burst of 20 passes; the rest of 200 sent at once cannot.
	for range 200 {
		if err := flood.ws.Write(t.Context(), MessageBinary, yproto.AppendQueryAwareness(nil)); err != nil {
			break // closed by the server meanwhile
		}
	}
	wantClose(t, flood, StatusPolicyViolation, "rate limit")
	other := dial(t, srvURL+"/r")
	other.next(isSync(yproto.SyncStep1))
	stillRelays(t, calm, other, newDocWriter())
}

// A panic while handling one connection's message is recovered and logged
// with its stack; it closes that connection only.
func TestPanicClosesOnlyThatConnection(t *testing.T) {
	core, logs := observer.New(zap.ErrorLevel)
	hub := newTestHub(t, t.TempDir(), Options{Logger: zap.New(core)})
	poison := []byte{byte(yproto.MessageAuth), 0, 4, 'b', 'o', 'o', 'm'}
	url := testServerWith(t, hub, ConnOptions{Codec: &panickyCodec{Codec: YWebsocket, poison: poison}})

	a, b, victim := dial(t, url+"/p"), dial(t, url+"/p"), dial(t, url+"/p")
	for _, c := range []*client{a, b, victim} {
		c.next(isSync(yproto.SyncStep1))
	}
	victim.send(poison)
	wantClose(t, victim, StatusInternalError, "internal error")
	stillRelays(t, a, b, newDocWriter())
	deadline := time.Now().Add(5 * time.Second)
	for logs.FilterMessageSnippet("panic").Len() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	entries := logs.FilterMessageSnippet("panic").All()
	if len(entries) != 1 {
		t.Fatalf("%d panic log entries, want 1", len(entries))
	}
	stack, _ := entries[0].ContextMap()["stack"].(string)
	if !strings.Contains(stack, "panickyCodec).Decode") {
		t.Fatalf("logged stack does not show where the panic came from:\n%s", stack)
	}
}

// panickyCodec is the y-websocket codec, except that decoding poison
// panics: a bug in handling one message.
type panickyCodec struct {
	Codec
	poison []byte
}

func (c *panickyCodec) Decode(msg []byte) (Op, error) {
	if bytes.Equal(msg, c.poison) {
		panic("injected")
	}
	return c.Codec.Decode(msg)
}
