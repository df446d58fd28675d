package wstransport

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/caddy-wiredb/wiredb/internal/wsframe"
)

// socket owns the writes to one hijacked connection. Every write to it holds
// its write lock: WriteMessages for a batch, and Write, through which
// coder/websocket's frames go, from a frame's first byte to its last.
//
// Lock order: mu, then the write lock; a holder of the write lock never
// takes mu.
type socket struct {
	raw net.Conn // the hijacked connection: deadlines and Close
	// w is where every byte to the socket is written: raw (tests put a
	// checker in between).
	w io.Writer

	// lock is the write lock: holding it is having sent into it. A
	// channel rather than a sync.Mutex so that it can be waited for with a
	// timeout, and its wait ended by dead.
	lock chan struct{}
	dead chan struct{} // closed when the socket is closed
	kill sync.Once

	// err, guarded by the write lock, is set once the stream is broken (a
	// write failed, or bytes that were not a frame were refused): the
	// peer's stream may end inside a frame, so nothing may follow.
	err error
	// closing, guarded by the write lock, is set by Conn.Close: no batch
	// may follow.
	closing bool

	mu sync.Mutex // serialises Write; guards f
	f  framer     // coder/websocket's frame stream
}

func newSocket(raw net.Conn) *socket {
	return &socket{raw: raw, w: raw, lock: make(chan struct{}, 1), dead: make(chan struct{})}
}

// errLockTimeout wraps os.ErrDeadlineExceeded, so that it reads as a write
// timeout.
var errLockTimeout = fmt.Errorf("wstransport: timed out waiting for the socket's write lock: %w", os.ErrDeadlineExceeded)

// acquire takes the write lock, waiting at most timeout (for ever if
// timeout < 0). It fails once the socket is closed.
func (s *socket) acquire(timeout time.Duration) error {
	select {
	case <-s.dead:
		return net.ErrClosed
	default:
	}
	select {
	case s.lock <- struct{}{}:
		return nil
	default:
	}
	var expired <-chan time.Time
	if timeout >= 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	select {
	case s.lock <- struct{}{}:
		return nil
	case <-s.dead:
		return net.ErrClosed
	case <-expired:
		return errLockTimeout
	}
}

func (s *socket) release() { <-s.lock }

// markDead ends every wait for the write lock, for good.
func (s *socket) markDead() { s.kill.Do(func() { close(s.dead) }) }

// close ends every wait for the write lock and closes the connection,
// which ends a write in progress.
func (s *socket) close() error {
	s.markDead()
	return s.raw.Close()
}

// Write writes p, a piece of a stream of server frames, to the socket. It
// takes the write lock at the first byte of a frame and releases it after
// the last; a frame split across Writes keeps it in between. Bytes that do
// not continue a frame stream are refused, unwritten.
//
// coder/websocket's bufio.Writer writes into it. coder/websocket holds its
// own writeFrameMu from a frame's header to its flush, so a frame's pieces
// come in order and nothing else of its comes between them.
func (s *socket) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(p) == 0 {
		return 0, nil
	}
	if s.f.between() {
		if err := s.acquire(-1); err != nil {
			return 0, err
		}
	}
	// The write lock is held from here.
	if s.err != nil {
		err := s.err
		s.release()
		return 0, err
	}
	if err := s.f.feed(p); err != nil {
		s.err = err
		s.release()
		return 0, err
	}
	n, err := s.w.Write(p)
	if err != nil {
		s.err = err
		s.release()
		return n, err
	}
	if s.f.between() {
		s.release()
	}
	return n, nil
}

// batchBuffers hold frames on their way to one write(2).
var batchBuffers = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBatch keeps a huge batch's buffer out of the pool.
const maxPooledBatch = 1 << 20

// writeBatch writes msgs as binary frames in one write, with a write
// deadline, which it clears after: coder/websocket sets none of its own,
// and the lock keeps its frames out of the time this one is set.
//
// After Conn.Close it returns ErrClosed.
func (s *socket) writeBatch(msgs [][]byte, deadline time.Time) error {
	if err := s.acquire(max(time.Until(deadline), 0)); err != nil {
		return err
	}
	defer s.release()
	if s.closing {
		return ErrClosed
	}
	if s.err != nil {
		return s.err
	}
	bufp := batchBuffers.Get().(*[]byte)
	buf := (*bufp)[:0]
	for _, msg := range msgs {
		buf = wsframe.AppendBinaryFrame(buf, msg)
	}
	s.raw.SetWriteDeadline(deadline)
	_, err := s.w.Write(buf)
	s.raw.SetWriteDeadline(time.Time{})
	if cap(buf) <= maxPooledBatch {
		*bufp = buf[:0]
		batchBuffers.Put(bufp)
	}
	if err != nil {
		s.err = err
	}
	return err
}

// sockConn is the connection coder/websocket gets from the hijack: reads
// pass through the guard; writes, which coder/websocket makes through its
// bufio.Writer rather than here, would go through the socket's lock too.
type sockConn struct {
	net.Conn // the guard's connection
	s        *socket
}

func (c *sockConn) Write(p []byte) (int, error) { return c.s.Write(p) }

func (c *sockConn) Close() error {
	c.s.markDead()
	return c.Conn.Close()
}

// hijacker wraps the guard's http.ResponseWriter, so that coder/websocket's
// writes go through the socket.
type hijacker struct {
	http.ResponseWriter // the guard's, an http.Hijacker
	guard               *wsframe.Guard
	sock                *socket // set by Hijack
}

// Unwrap lets http.ResponseController reach the wrapped writer's other
// features; coder/websocket's hijacker lookup stops at this Hijack.
func (h *hijacker) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// Hijack hijacks through the guard, then points the bufio.Writer that
// coder/websocket writes its frames into at the socket. The guard's writer
// is empty (net/http has flushed the 101 response on the connection before
// the guard made it), and Reset keeps its buffer.
func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := h.ResponseWriter.(http.Hijacker).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.sock = newSocket(h.guard.Conn())
	brw.Writer.Reset(h.sock)
	return &sockConn{Conn: nc, s: h.sock}, brw, nil
}

// Interface guards
var (
	_ io.Writer     = (*socket)(nil)
	_ net.Conn      = (*sockConn)(nil)
	_ http.Hijacker = (*hijacker)(nil)
)
