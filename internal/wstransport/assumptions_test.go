package wstransport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The coder/websocket version whose behaviour this package was checked
// against, and what it relies on.
const (
	coderModule  = "github.com/coder/websocket"
	coderVersion = "v1.8.15"
	coderAssumed = `this package relies on coder/websocket's internals; re-verify in its source (accept.go, conn.go, read.go, write.go, close.go) that, on the server side:
  1. every frame it writes (data, ping, pong, close) goes through the bufio.Writer returned by Hijack, never the net.Conn's Write, with a flush at the end of each final frame, under its writeFrameMu (socket.Write relies on this to hold the write lock from a frame's first byte to its last);
  2. the 101 response is written and flushed by net/http before Hijack returns, so the bufio.Writer carries only frames (the framer refuses anything else);
  3. it reads the bytes buffered in the hijacked bufio.Reader, then the hijacked net.Conn (wsframe.Guard sits beneath both);
  4. it sets no deadlines on the connection (its timeouts close it), so the write deadline a batch sets and clears, and Close's, are the only ones;
  5. Close writes the close frame with a 5 s timeout, then waits 5 s for the peer's; a failure to write a pong while it waits ends the handshake (hence onPing);
  6. OnPingReceived returning false skips the pong.
Then update coderVersion. TestCoderWebsocketAssumptions checks 1-4 and 6 against the running version.`
)

// TestCoderWebsocketVersion fails when go.mod moves coder/websocket to a
// version this package was not checked against. (A test binary's
// debug.BuildInfo lists no dependencies, so it reads go.mod.)
func TestCoderWebsocketVersion(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join("..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	var versions []string
	for line := range strings.Lines(string(data)) {
		fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
		if len(fields) == 0 {
			continue
		}
		switch {
		case fields[0] == "replace" && slices.Contains(fields, coderModule), fields[0] == coderModule && slices.Contains(fields, "=>"):
			t.Errorf("go.mod replaces %s: %s\n%s", coderModule, strings.TrimSpace(line), coderAssumed)
		case fields[0] == coderModule && len(fields) >= 2:
			versions = append(versions, fields[1])
		}
	}
	if len(versions) != 1 || versions[0] != coderVersion {
		t.Errorf("go.mod requires %s %v; this package was checked against %s only;\n%s", coderModule, versions, coderVersion, coderAssumed)
	}
}

// record is what a recording hijack saw of coder/websocket's use of the
// connection.
type record struct {
	mu        sync.Mutex
	direct    int          // net.Conn Write calls
	deadlines int          // Set*Deadline calls
	connReads int          // net.Conn Read calls
	trapped   bool         // the hijacked bufio.Reader's source was read after the hijack
	stream    bytes.Buffer // bytes through the bufio.Writer
	f         framer
	ferr      error
	frames    [16]int
}

func (r *record) between() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ferr == nil && r.f.between()
}

type recConn struct {
	net.Conn
	r *record
}

func (c *recConn) Write(p []byte) (int, error) {
	c.r.mu.Lock()
	c.r.direct++
	c.r.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *recConn) Read(p []byte) (int, error) {
	c.r.mu.Lock()
	c.r.connReads++
	c.r.mu.Unlock()
	return c.Conn.Read(p)
}

func (c *recConn) SetDeadline(t time.Time) error {
	c.r.deadline()
	return c.Conn.SetDeadline(t)
}

func (c *recConn) SetReadDeadline(t time.Time) error {
	c.r.deadline()
	return c.Conn.SetReadDeadline(t)
}

func (c *recConn) SetWriteDeadline(t time.Time) error {
	c.r.deadline()
	return c.Conn.SetWriteDeadline(t)
}

func (r *record) deadline() {
	r.mu.Lock()
	r.deadlines++
	r.mu.Unlock()
}

// recWriter is where the hijacked bufio.Writer writes.
type recWriter struct {
	nc net.Conn
	r  *record
}

func (w *recWriter) Write(p []byte) (int, error) {
	w.r.mu.Lock()
	w.r.stream.Write(p)
	for q := p; len(q) > 0 && w.r.ferr == nil; q = q[1:] {
		if w.r.ferr = w.r.f.feed(q[:1]); w.r.ferr == nil && w.r.f.between() {
			w.r.frames[w.r.f.op]++
		}
	}
	w.r.mu.Unlock()
	return w.nc.Write(p)
}

// trapReader hands out the bytes buffered before the hijack, then records
// any further read.
type trapReader struct {
	data []byte
	r    *record
}

func (t *trapReader) Read(p []byte) (int, error) {
	if len(t.data) > 0 {
		n := copy(p, t.data)
		t.data = t.data[n:]
		return n, nil
	}
	t.r.mu.Lock()
	t.r.trapped = true
	t.r.mu.Unlock()
	return 0, net.ErrClosed
}

// recHijacker hijacks for coder/websocket and records what it does.
type recHijacker struct {
	http.ResponseWriter
	r *record
}

func (h *recHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	b, _ := brw.Reader.Peek(brw.Reader.Buffered())
	br := bufio.NewReader(&trapReader{data: bytes.Clone(b), r: h.r})
	if len(b) > 0 {
		br.Peek(len(b))
	}
	return &recConn{Conn: nc, r: h.r}, bufio.NewReadWriter(br, bufio.NewWriterSize(&recWriter{nc: nc, r: h.r}, 128)), nil
}

// TestCoderWebsocketAssumptions runs a server session on plain
// coder/websocket, through a hijack that records its reads and writes, and
// checks the assumptions listed in coderAssumed against the running
// version.
func TestCoderWebsocketAssumptions(t *testing.T) {
	t.Parallel()
	rec := &record{}
	reason := strings.Repeat("r", 120)
	serverErr := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pings := 0
		ws, err := websocket.Accept(&recHijacker{ResponseWriter: w, r: rec}, r, &websocket.AcceptOptions{
			OnPingReceived: func(context.Context, []byte) bool { pings++; return pings != 2 },
		})
		if err != nil {
			serverErr <- err.Error()
			return
		}
		defer ws.CloseNow()
		fail := func(s string) { serverErr <- s }
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rec.mu.Lock()
		n := rec.stream.Len()
		rec.mu.Unlock()
		if n != 0 {
			fail("the handshake went through the hijacked bufio.Writer")
			return
		}
		// 3: a message sent with the request, buffered before the hijack.
		if _, msg, err := ws.Read(ctx); err != nil || string(msg) != "pipelined" {
			fail("pipelined message: " + string(msg))
			return
		}
		// 1: a data frame larger than the buffer, flushed whole.
		if err := ws.Write(ctx, websocket.MessageBinary, bytes.Repeat([]byte("x"), 1000)); err != nil {
			fail(err.Error())
			return
		}
		if !rec.between() {
			fail("a data frame was not flushed whole by the end of Write")
			return
		}
		// The client answers our ping, then pings twice (the second is
		// not answered: 6), then sends "second".
		read := make(chan string, 1)
		go func() {
			_, msg, err := ws.Read(ctx)
			if err != nil {
				read <- err.Error()
				return
			}
			read <- string(msg)
		}()
		if err := ws.Ping(ctx); err != nil {
			fail(err.Error())
			return
		}
		if msg := <-read; msg != "second" {
			fail("second message: " + msg)
			return
		}
		if !rec.between() {
			fail("a pong was not flushed whole")
			return
		}
		go ws.Read(ctx) // reads the close handshake
		if err := ws.Close(4000, reason); err != nil {
			fail(err.Error())
			return
		}
		serverErr <- ""
	}))
	defer srv.Close()

	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	conn, br := rawDial(t, url, clientFrame(0x2, []byte("pipelined")))
	expect := func(wantOp byte, want string) []byte {
		t.Helper()
		op, payload, err := readFrame(br)
		if err != nil || op != wantOp || (want != "" && string(payload) != want) {
			t.Fatalf("frame %d %q, %v; want %d %q", op, payload, err, wantOp, want)
		}
		return payload
	}
	expect(0x2, strings.Repeat("x", 1000))
	p := expect(0x9, "")
	conn.Write(clientFrame(0xA, p))
	big := bytes.Repeat([]byte("q"), 125) // a pong of 127 bytes: 2 bytes short of the buffer
	conn.Write(clientFrame(0x9, big))
	expect(0xA, string(big))
	conn.Write(clientFrame(0x9, []byte("unanswered")))
	conn.Write(clientFrame(0x2, []byte("second")))
	cp := expect(0x8, "")
	if code := binary.BigEndian.Uint16(cp); code != 4000 || string(cp[2:]) != reason {
		t.Fatalf("close %d %q", code, cp[2:])
	}
	conn.Write(clientFrame(0x8, cp[:2]))
	if msg := <-serverErr; msg != "" {
		t.Fatal(msg)
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.direct != 0 {
		t.Errorf("assumption 1: %d writes straight to the net.Conn", rec.direct)
	}
	if rec.ferr != nil || !rec.f.between() {
		t.Errorf("assumptions 1 and 2: the bufio.Writer's stream is not whole frames: %v", rec.ferr)
	}
	if rec.frames[0x2] != 1 || rec.frames[0x9] != 1 || rec.frames[0xA] != 1 || rec.frames[0x8] != 1 {
		t.Errorf("assumptions 1 and 6: frames through the bufio.Writer %v, want 1 binary, 1 ping, 1 pong, 1 close", rec.frames)
	}
	if rec.trapped || rec.connReads == 0 {
		t.Errorf("assumption 3: the hijacked reader's source read after the hijack: %v; net.Conn reads: %d", rec.trapped, rec.connReads)
	}
	if rec.deadlines != 0 {
		t.Errorf("assumption 4: %d deadlines set", rec.deadlines)
	}
	if t.Failed() {
		t.Log(coderAssumed)
	}
}
