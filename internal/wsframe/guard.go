package wsframe

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// ErrTooBig is returned by reads of a guarded connection once the guard has
// tripped and the connection has then been closed, by this side or by the
// peer. It wraps net.ErrClosed: coder/websocket's Close treats that as a
// connection that is already closed and reports a clean close.
var ErrTooBig = fmt.Errorf("wsframe: message too big, reading stopped: %w", net.ErrClosed)

// Guard watches the client-to-server framing of one WebSocket connection and
// reports the first data message that announces more than its limit. A data
// message is a frame with opcode 1 or 2 and the continuation frames
// (opcode 0) that follow it; its announced size is the sum of their payload
// lengths. Control frames interleaved with it do not count. A 64-bit length
// with its most significant bit set is a protocol error and counts as too
// big.
//
// Once tripped, the guarded connection delivers no more bytes to
// coder/websocket: a read blocks, discarding whatever the peer still sends,
// until the connection is closed by either side, then fails with ErrTooBig.
// The bytes of the offending header are not delivered (only bytes before the
// one that completed its length, so coder/websocket never sees the complete
// header and never acts on it); the caller is expected to close the
// connection with websocket.StatusMessageTooBig when the function given to
// OnTooBig runs.
//
// A Guard watches one connection: create one per request. Its methods are
// safe for concurrent use.
type Guard struct {
	limit     int64
	tooBig    chan struct{}
	once      sync.Once
	announced atomic.Int64
	hijacked  atomic.Pointer[net.Conn]
	onTooBig  atomic.Pointer[func()]
}

// OnTooBig arranges for f to run once when the guard trips, or at once if
// it already has. f runs on the reading goroutine and must not block.
func (g *Guard) OnTooBig(f func()) {
	var once sync.Once
	run := func() { once.Do(f) }
	g.onTooBig.Store(&run)
	select {
	case <-g.tooBig:
		run()
	default:
	}
}

// Conn returns the hijacked connection, unwrapped: writes to it go straight
// to the peer. Nil before the hijack. A caller that writes to it beside
// coder/websocket must serialise those writes with coder/websocket's own
// frames (internal/wstransport does).
func (g *Guard) Conn() net.Conn {
	if c := g.hijacked.Load(); c != nil {
		return *c
	}
	return nil
}

// NewGuard returns a Guard that trips on a data message announcing more than
// limit bytes; a message of exactly limit bytes passes, as with
// websocket.Conn.SetReadLimit, which should be given the same limit. A
// negative limit disables the size check; the guard then trips only on a
// 64-bit length with its most significant bit set.
func NewGuard(limit int64) *Guard {
	return &Guard{limit: limit, tooBig: make(chan struct{})}
}

// Announced returns the announced size of the message that tripped the
// guard, saturated at math.MaxInt64, or 0 while it has not tripped. It is
// final by the time the function given to OnTooBig runs.
func (g *Guard) Announced() int64 { return g.announced.Load() }

func (g *Guard) trip(announced int64) {
	g.once.Do(func() {
		g.announced.Store(announced)
		close(g.tooBig)
		if f := g.onTooBig.Load(); f != nil {
			(*f)()
		}
	})
}

// Wrap returns a ResponseWriter to pass to websocket.Accept in place of w.
// Its Hijack hijacks w, following Unwrap methods as
// http.ResponseController does (so Caddy's wrappers work), and returns a
// connection whose reads, including the bytes the HTTP server had already
// buffered, pass through g. Writes are not watched.
//
// If w cannot be hijacked (no http.Hijacker on its Unwrap chain, as with
// HTTP/2), Wrap returns w itself, so that Accept fails with the same 501
// response it would give without the guard.
func (g *Guard) Wrap(w http.ResponseWriter) http.ResponseWriter {
	if !canHijack(w) {
		return w
	}
	return &responseWriter{ResponseWriter: w, g: g}
}

// canHijack reports whether an http.Hijacker can be found by following
// Unwrap methods from w, as coder/websocket (hijack.go) and
// http.ResponseController.Hijack look for one.
func canHijack(w http.ResponseWriter) bool {
	for {
		switch t := w.(type) {
		case http.Hijacker:
			return true
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return false
		}
	}
}

// responseWriter implements http.Hijacker itself: coder/websocket's hijacker
// lookup takes a Hijacker before it follows Unwrap, so it always reaches this
// Hijack.
type responseWriter struct {
	http.ResponseWriter
	g *Guard
}

// Unwrap lets http.ResponseController reach the wrapped writer's other
// features (Flush, deadlines); its Hijack still stops at this writer.
func (rw *responseWriter) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

// Hijack hijacks the wrapped writer and puts the guard beneath the returned
// reader.
//
// coder/websocket (accept.go) takes brw.Reader's buffered bytes and then
// reads brw.Reader's buffer followed by the net.Conn. So the bytes already
// buffered are moved into the guarded connection, which hands them out
// before reading from the network, and brw.Reader is reset, empty, onto the
// guarded connection. Both routes then lead through the parser.
func (rw *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(rw.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	rw.g.hijacked.Store(&nc)
	c := &conn{Conn: nc, g: rw.g, p: newParser(rw.g.limit)}
	if brw != nil && brw.Reader.Buffered() > 0 {
		// At most the reader's buffer size (4 KiB with net/http).
		b, _ := brw.Reader.Peek(brw.Reader.Buffered())
		c.pending = bytes.Clone(b)
	}
	// Fresh, small buffers instead of net/http's 4 KiB each: they stay
	// with the connection for its whole life, so they are most of what an
	// idle connection costs. The reader only holds frame headers and small
	// messages (bufio reads larger ones straight into the caller's
	// buffer); the writer only control frames, when the caller writes its
	// data frames to the connection itself (Conn). net/http has flushed
	// the 101 response by the time Hijack returns; coder/websocket writes
	// nothing more of the handshake.
	brw = bufio.NewReadWriter(bufio.NewReaderSize(c, readBufferSize), bufio.NewWriterSize(nc, writeBufferSize))
	return c, brw, nil
}

// Buffer sizes of a hijacked connection; see Hijack. Both stay with an idle
// connection for its whole life. The writer holds the largest control
// frame, a close frame of 2+2+123 bytes, so that each of coder/websocket's
// frames leaves in one write (internal/wstransport does not depend on
// that: its write lock spans a frame across writes). The reader takes a
// dozen keystroke-sized frames per read(2); a larger one cost idle memory
// without a measurable gain in throughput.
const (
	readBufferSize  = 512
	writeBufferSize = 128
)

// conn is a hijacked connection whose reads pass through a parser.
type conn struct {
	net.Conn
	g *Guard

	mu      sync.Mutex // serialises reads; guards the fields below
	pending []byte     // bytes buffered by the HTTP server before the hijack
	p       parser
}

// Read reads from the connection through the parser. Once the guard has
// tripped it returns no more data: it discards what the peer sends until the
// connection is closed by either side, then returns ErrTooBig.
func (c *conn) Read(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.p.tripped() {
		return 0, c.drain(b)
	}
	var n int
	var err error
	if len(c.pending) > 0 {
		n = copy(b, c.pending)
		c.pending = c.pending[n:]
		if len(c.pending) == 0 {
			c.pending = nil
		}
	} else {
		n, err = c.Conn.Read(b)
	}
	k, tripped := c.p.feed(b[:n])
	if !tripped {
		return n, err
	}
	c.pending = nil
	c.g.trip(c.p.announced)
	if k > 0 {
		// Deliver the bytes before the offending header's last length byte;
		// the next read drains.
		return k, nil
	}
	return 0, c.drain(b)
}

// drain reads and discards until a read fails (the connection was closed by
// either side, or a read deadline set on it passed), then returns
// ErrTooBig. Reading, rather than only waiting for a local Close, lets a peer
// that closes its side end the wait early (coder/websocket's Close otherwise
// waits 5 s for a close frame that cannot come while the peer is inside a
// frame) and keeps the peer's bytes from piling up unread, which would make
// our eventual close send a reset. b is used as scratch space, as io.Reader
// allows.
func (c *conn) drain(b []byte) error {
	if len(b) == 0 {
		b = make([]byte, 512) // only once tripped: not kept by every connection
	}
	for {
		if _, err := c.Conn.Read(b); err != nil {
			return ErrTooBig
		}
	}
}

// Interface guards
var (
	_ http.Hijacker = (*responseWriter)(nil)
	_ net.Conn      = (*conn)(nil)
)
