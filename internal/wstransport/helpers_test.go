package wstransport

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// serve starts a server on 127.0.0.1 whose handler accepts each request
// with opts (batched or not) and runs fn on the handler's goroutine. It
// returns the ws:// URL.
func serve(t testing.TB, opts Options, batched bool, fn func(c *Conn)) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := accept(w, r, opts, batched)
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer c.CloseNow()
		fn(c)
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// dial connects a coder/websocket client, closed at cleanup.
func dial(t testing.TB, url string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	ws.SetReadLimit(-1)
	return ws
}

// checkWriter stands between a socket and its connection in tests: it
// counts writes made without the socket's write lock, and follows the
// frame stream, counting frames by opcode.
type checkWriter struct {
	s *socket
	w io.Writer

	mu       sync.Mutex
	f        framer
	err      error
	unlocked int
	frames   [16]int
}

// check puts a checkWriter under c's socket. It must be called before
// anything is written to c.
func check(t testing.TB, c *Conn) *checkWriter {
	t.Helper()
	if c.sock == nil {
		t.Fatal("no socket: the connection is on the fallback path")
	}
	cw := &checkWriter{s: c.sock, w: c.sock.w}
	c.sock.w = cw
	return cw
}

func (cw *checkWriter) Write(p []byte) (int, error) {
	cw.mu.Lock()
	if len(cw.s.lock) != 1 {
		cw.unlocked++
	}
	for q := p; len(q) > 0 && cw.err == nil; {
		k := 1
		if cw.f.state == framerPayload {
			k = int(min(cw.f.remaining, uint64(len(q))))
		}
		if cw.err = cw.f.feed(q[:k]); cw.err == nil && cw.f.between() {
			cw.frames[cw.f.op]++
		}
		q = q[k:]
	}
	cw.mu.Unlock()
	return cw.w.Write(p)
}

// report returns the counts so far.
func (cw *checkWriter) report() (unlocked int, frames [16]int, err error) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	return cw.unlocked, cw.frames, cw.err
}

// The handshake example of RFC 6455 §1.3.
const (
	wsKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	wsAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// rawDial opens a TCP connection to url and performs the handshake by
// hand, sending extra right behind the request in the same write. Every
// read and write on it must be done within 10 s.
func rawDial(t testing.TB, url string, extra []byte) (net.Conn, *bufio.Reader) {
	t.Helper()
	addr := strings.TrimPrefix(url, "ws://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
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

// clientFrame encodes a final client frame, masked.
func clientFrame(op byte, payload []byte) []byte {
	return clientHeader(op, uint64(len(payload)), payload)
}

// clientHeader encodes a final client frame header announcing n bytes,
// followed by payload (which may be shorter), masked with a fixed key.
func clientHeader(op byte, n uint64, payload []byte) []byte {
	b := []byte{0x80 | op}
	switch {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, n)
	}
	key := [4]byte{0x11, 0x22, 0x33, 0x44}
	b = append(b, key[:]...)
	for i, x := range payload {
		b = append(b, x^key[i%4])
	}
	return b
}

// readFrame reads one unmasked server frame of at most 1 MiB.
func readFrame(br *bufio.Reader) (op byte, payload []byte, err error) {
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
	if n > 1<<20 {
		return 0, nil, fmt.Errorf("server frame of %d bytes", n)
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(br, payload)
	return h[0] & 0x0f, payload, err
}
