package wsframe

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

const e2eLimit = 1 << 20

func tooBigReason(g *Guard) string {
	return fmt.Sprintf("message of %d bytes exceeds the limit of %d bytes", g.Announced(), g.Limit())
}

// handlerResult is what a guarded server's handler saw.
type handlerResult struct {
	acceptErr error
	tripped   bool
	announced int64
	readErr   error
	messages  int
}

// guardedServer starts a coder/websocket echo server that accepts through a
// Guard with limit e2eLimit and closes with 1009 when the guard trips, the
// way a real handler should. wrap, if not nil, wraps the server's writer
// first (a middleware). Each handler reports on the returned channel when it
// returns.
func guardedServer(t *testing.T, wrap func(http.ResponseWriter) http.ResponseWriter) (*httptest.Server, <-chan handlerResult) {
	t.Helper()
	results := make(chan handlerResult, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if wrap != nil {
			w = wrap(w)
		}
		g := NewGuard(e2eLimit)
		ws, err := websocket.Accept(g.Wrap(w), r, nil)
		if err != nil {
			results <- handlerResult{acceptErr: err}
			return
		}
		defer ws.CloseNow()
		ws.SetReadLimit(e2eLimit)

		ctx, cancel := context.WithCancel(context.Background())
		watcherDone := make(chan struct{})
		go func() {
			defer close(watcherDone)
			select {
			case <-g.TooBig():
				ws.Close(websocket.StatusMessageTooBig, tooBigReason(g))
			case <-ctx.Done():
			}
		}()

		var res handlerResult
		for {
			typ, msg, err := ws.Read(ctx)
			if err != nil {
				res.readErr = err
				break
			}
			res.messages++
			if err := ws.Write(ctx, typ, msg); err != nil {
				res.readErr = err
				break
			}
		}
		cancel()
		<-watcherDone
		select {
		case <-g.TooBig():
			res.tripped = true
		default:
		}
		res.announced = g.Announced()
		results <- res
	}))
	t.Cleanup(srv.Close)
	return srv, results
}

func waitHandler(t *testing.T, results <-chan handlerResult, timeout time.Duration) handlerResult {
	t.Helper()
	select {
	case res := <-results:
		if res.acceptErr != nil {
			t.Fatalf("accept: %v", res.acceptErr)
		}
		return res
	case <-time.After(timeout):
		t.Fatal("server handler did not return")
		return handlerResult{}
	}
}

// The handshake example of RFC 6455 §1.3.
const (
	wsKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	wsAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// rawUpgrade opens a TCP connection to srv and performs the WebSocket
// handshake by hand, sending extra right behind the request in the same
// write. All reads and writes on it must be done within a few seconds.
func rawUpgrade(t *testing.T, srv *httptest.Server, extra []byte) (net.Conn, *bufio.Reader) {
	t.Helper()
	addr := srv.Listener.Addr().String()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(3 * time.Second))
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + wsKey + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := c.Write(append([]byte(req), extra...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != wsAccept {
		t.Fatalf("handshake: %s, Sec-WebSocket-Accept %q", resp.Status, resp.Header.Get("Sec-WebSocket-Accept"))
	}
	return c, br
}

// readServerFrame reads one unmasked server frame of at most 64 KiB.
func readServerFrame(br *bufio.Reader) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, nil, err
	}
	if h[1]&0x80 != 0 {
		return 0, nil, errors.New("masked server frame")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 1<<16 {
		return 0, nil, fmt.Errorf("server frame of %d bytes", n)
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(br, payload)
	return h[0] & 0x0f, payload, err
}

// readClose reads server frames until a close frame and returns its code and
// reason.
func readClose(t *testing.T, br *bufio.Reader) (websocket.StatusCode, string) {
	t.Helper()
	for {
		op, payload, err := readServerFrame(br)
		if err != nil {
			t.Fatalf("waiting for a close frame: %v", err)
		}
		if op != 0x8 {
			continue
		}
		if len(payload) < 2 {
			t.Fatalf("close frame without a status code: %q", payload)
		}
		return websocket.StatusCode(binary.BigEndian.Uint16(payload)), string(payload[2:])
	}
}

// maskedFrame encodes a client frame, masked with a fixed key.
func maskedFrame(fin bool, op byte, payload []byte) []byte {
	b := frame(fin, op, payload)
	key := b[len(b)-len(payload)-4 : len(b)-len(payload)]
	p := b[len(b)-len(payload):]
	for i := range p {
		p[i] ^= key[i%4]
	}
	return b
}

// TestEndToEndHugeHeader sends a header announcing 1 TiB followed by 10
// payload bytes to a coder/websocket server and expects a 1009 close at once,
// not after 1 TiB.
func TestEndToEndHugeHeader(t *testing.T) {
	t.Parallel()
	const tib = 1 << 40
	huge := cat(headerEnc(true, opBinary, true, tib, 64), make([]byte, 10))
	wantReason := fmt.Sprintf("message of %d bytes exceeds the limit of %d bytes", int64(tib), e2eLimit)
	tests := []struct {
		name      string
		pipelined bool // huge goes in the same write as the request
		byteWise  bool // huge is written a byte at a time
		echoFirst bool // a small message is echoed first
		wrap      func(http.ResponseWriter) http.ResponseWriter
	}{
		{name: "after the handshake"},
		{name: "pipelined with the handshake", pipelined: true},
		{name: "a byte at a time", byteWise: true},
		{name: "after a message", echoFirst: true},
		{name: "through an Unwrap-only middleware", wrap: func(w http.ResponseWriter) http.ResponseWriter { return unwrapOnly{w} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, results := guardedServer(t, tt.wrap)
			var extra []byte
			if tt.pipelined {
				extra = huge
			}
			c, br := rawUpgrade(t, srv, extra)
			if tt.echoFirst {
				if _, err := c.Write(maskedFrame(true, opText, []byte("hi"))); err != nil {
					t.Fatal(err)
				}
				op, payload, err := readServerFrame(br)
				if err != nil || op != opText || string(payload) != "hi" {
					t.Fatalf("echo: %d %q %v", op, payload, err)
				}
			}
			switch {
			case tt.pipelined:
			case tt.byteWise:
				for i := range huge {
					if _, err := c.Write(huge[i : i+1]); err != nil {
						t.Fatal(err)
					}
					time.Sleep(time.Millisecond)
				}
			default:
				if _, err := c.Write(huge); err != nil {
					t.Fatal(err)
				}
			}

			code, reason := readClose(t, br)
			if code != websocket.StatusMessageTooBig || reason != wantReason {
				t.Errorf("close %d %q, want %d %q", code, reason, websocket.StatusMessageTooBig, wantReason)
			}
			c.Close()
			// The server is draining and sees our close at once.
			res := waitHandler(t, results, 10*time.Second)
			if !res.tripped || res.announced != tib {
				t.Errorf("handler: tripped %v, announced %d", res.tripped, res.announced)
			}
			if res.readErr == nil {
				t.Error("handler read no error")
			}
		})
	}
}

// TestEndToEndHugeHeaderPeerStaysOpen checks that the handler also returns
// when the peer keeps its side open: coder/websocket's Close gives up waiting
// for the peer's close frame after 5 s and closes the connection, which ends
// the guarded read.
func TestEndToEndHugeHeaderPeerStaysOpen(t *testing.T) {
	t.Parallel()
	srv, results := guardedServer(t, nil)
	c, br := rawUpgrade(t, srv, nil)
	if _, err := c.Write(cat(headerEnc(true, opBinary, true, 1<<40, 64), make([]byte, 10))); err != nil {
		t.Fatal(err)
	}
	if code, _ := readClose(t, br); code != websocket.StatusMessageTooBig {
		t.Fatalf("close code %d", code)
	}
	c.SetDeadline(time.Now().Add(15 * time.Second))
	res := waitHandler(t, results, 15*time.Second)
	if !res.tripped {
		t.Error("guard did not trip")
	}
	// The server closed the connection.
	if _, err := br.ReadByte(); err == nil || errors.Is(err, ErrTooBig) {
		t.Errorf("read after the server's close: %v", err)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("server did not close the connection: %v", err)
	}
}

// TestEndToEndNormalTraffic checks with a coder/websocket client that
// messages within the limit, fragmented or not, with pings between their
// fragments, reach the server unchanged.
func TestEndToEndNormalTraffic(t *testing.T) {
	t.Parallel()
	srv, results := guardedServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client, _, err := websocket.Dial(ctx, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.CloseNow()
	client.SetReadLimit(e2eLimit)

	type echo struct {
		typ websocket.MessageType
		msg []byte
		err error
	}
	echoes := make(chan echo)
	go func() {
		for {
			typ, msg, err := client.Read(ctx)
			echoes <- echo{typ, msg, err}
			if err != nil {
				return
			}
		}
	}()

	r := rand.New(rand.NewPCG(1, 2))
	messages := []struct {
		typ   websocket.MessageType
		parts []int // one frame per part
	}{
		{websocket.MessageBinary, []int{0}},
		{websocket.MessageBinary, []int{1}},
		{websocket.MessageText, []int{125}},
		{websocket.MessageBinary, []int{126}},
		{websocket.MessageBinary, []int{65535}},
		{websocket.MessageBinary, []int{65536}},
		{websocket.MessageBinary, []int{e2eLimit}},
		{websocket.MessageBinary, []int{100, 0, 200000, 5}},
		{websocket.MessageText, []int{3, 3, 3}},
		{websocket.MessageBinary, []int{e2eLimit / 2, e2eLimit / 4, e2eLimit / 4}},
	}
	for i, m := range messages {
		var want []byte
		w, err := client.Writer(ctx, m.typ)
		if err != nil {
			t.Fatal(err)
		}
		for j, n := range m.parts {
			var part []byte
			if m.typ == websocket.MessageText {
				part = []byte(strings.Repeat("é", n/2) + strings.Repeat("a", n%2))
			} else {
				part = randomBytes(r, n)
			}
			want = append(want, part...)
			if j > 0 {
				// A ping between two fragments; the reader above handles the pong.
				if err := client.Ping(ctx); err != nil {
					t.Fatalf("message %d: ping: %v", i, err)
				}
			}
			if _, err := w.Write(part); err != nil {
				t.Fatalf("message %d: write: %v", i, err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		e := <-echoes
		if e.err != nil {
			t.Fatalf("message %d: echo: %v", i, e.err)
		}
		if e.typ != m.typ || !bytes.Equal(e.msg, want) {
			t.Fatalf("message %d: echo of type %v and %d bytes, want %v and %d bytes", i, e.typ, len(e.msg), m.typ, len(want))
		}
	}
	if err := client.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	res := waitHandler(t, results, 10*time.Second)
	if res.tripped || res.messages != len(messages) || websocket.CloseStatus(res.readErr) != websocket.StatusNormalClosure {
		t.Errorf("handler: tripped %v (announced %d), %d messages, read error %v", res.tripped, res.announced, res.messages, res.readErr)
	}
}

// TestEndToEndFragmentedTooBig sends a message in 300 KiB fragments with a
// coder/websocket client: the fourth fragment's header takes it over the
// 1 MiB limit.
func TestEndToEndFragmentedTooBig(t *testing.T) {
	t.Parallel()
	srv, results := guardedServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, _, err := websocket.Dial(ctx, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.CloseNow()

	readErr := make(chan error, 1)
	go func() {
		_, _, err := client.Read(ctx)
		readErr <- err
	}()
	const part = 300 << 10
	w, err := client.Writer(ctx, websocket.MessageBinary)
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		// Errors are expected once the server has closed.
		if _, err := w.Write(make([]byte, part)); err != nil {
			break
		}
	}
	w.Close()

	select {
	case err := <-readErr:
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.StatusMessageTooBig ||
			ce.Reason != fmt.Sprintf("message of %d bytes exceeds the limit of %d bytes", 4*part, e2eLimit) {
			t.Errorf("client read error %v, want a 1009 close", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no close from the server")
	}
	res := waitHandler(t, results, 10*time.Second)
	if !res.tripped || res.announced != 4*part {
		t.Errorf("handler: tripped %v, announced %d, want %d", res.tripped, res.announced, 4*part)
	}
}
