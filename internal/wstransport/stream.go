package wstransport

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// WebSockets over HTTP/2 (RFC 8441) and HTTP/3 (RFC 9220) are opened by an
// extended CONNECT: a CONNECT request with the pseudo-header :protocol
// "websocket", answered 200, after which the request body carries the
// client's frames and the response body the server's. The frames are
// RFC 6455's, unchanged. So the stream is given to the same pipeline as a
// hijacked HTTP/1.1 connection (the frame-header guard, coder/websocket,
// the batched socket writes) as a net.Conn, behind a ResponseWriter that
// turns coder/websocket's 101 into the stream's 200.

// IsExtendedConnect reports whether r opens a WebSocket by an extended
// CONNECT: net/http's HTTP/2 server keeps :protocol as a header, and
// quic-go's HTTP/3 server puts it in Proto.
func IsExtendedConnect(r *http.Request) bool {
	if r.Method != http.MethodConnect {
		return false
	}
	switch r.ProtoMajor {
	case 2:
		return r.Header.Get(":protocol") == "websocket"
	case 3:
		return r.Proto == "websocket"
	}
	return false
}

// AcceptStream accepts a WebSocket opened by an extended CONNECT (see
// IsExtendedConnect), with the checks and options of Accept. The stream
// lives only while the handler that got r runs: the caller must not return
// before done is closed, which happens once the connection is closed.
func AcceptStream(w http.ResponseWriter, r *http.Request, opts Options) (c *Conn, done <-chan struct{}, err error) {
	sc := newStreamConn(w, r)
	conn, err := accept(&streamWriter{w: w, hdr: make(http.Header), conn: sc}, upgradeRequest(r), opts, true)
	if err != nil {
		return nil, nil, err
	}
	return conn, sc.done, nil
}

// upgradeRequest is r as an HTTP/1.1 upgrade, which coder/websocket checks
// for. The key is made up: an extended CONNECT has none, and its answer
// (Sec-WebSocket-Accept) is not sent on a stream.
func upgradeRequest(r *http.Request) *http.Request {
	r2 := r.Clone(r.Context())
	r2.Method = http.MethodGet
	r2.Proto, r2.ProtoMajor, r2.ProtoMinor = "HTTP/1.1", 1, 1
	r2.Header.Del(":protocol")
	r2.Header.Set("Connection", "Upgrade")
	r2.Header.Set("Upgrade", "websocket")
	if r2.Header.Get("Sec-WebSocket-Version") == "" {
		r2.Header.Set("Sec-WebSocket-Version", "13")
	}
	key := make([]byte, 16)
	rand.Read(key)
	r2.Header.Set("Sec-WebSocket-Key", base64.StdEncoding.EncodeToString(key))
	return r2
}

// streamWriter is the stream's ResponseWriter as coder/websocket expects an
// HTTP/1.1 one: the headers it sets for a 101 stay here (connection
// headers are not allowed on HTTP/2 and HTTP/3), and the 101 goes out as a
// 200 with the chosen subprotocol; an error answer goes out as it is.
type streamWriter struct {
	w    http.ResponseWriter
	hdr  http.Header
	conn *streamConn
}

func (s *streamWriter) Header() http.Header { return s.hdr }

func (s *streamWriter) WriteHeader(code int) {
	if code == http.StatusSwitchingProtocols {
		if p := s.hdr.Get("Sec-WebSocket-Protocol"); p != "" {
			s.w.Header().Set("Sec-WebSocket-Protocol", p)
		}
		s.w.WriteHeader(http.StatusOK)
		_ = http.NewResponseController(s.w).Flush()
		return
	}
	for k, v := range s.hdr {
		s.w.Header()[k] = v
	}
	s.w.WriteHeader(code)
}

func (s *streamWriter) Write(p []byte) (int, error) { return s.w.Write(p) }

// Hijack hands over the stream as a connection.
func (s *streamWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return s.conn, bufio.NewReadWriter(bufio.NewReader(s.conn), bufio.NewWriter(s.conn)), nil
}

// streamConn is an extended CONNECT's stream as a net.Conn: reads from the
// request body, writes (flushed at once) to the response. Its Close ends
// the handler's wait (done), which ends the stream. Nothing may touch the
// request or the ResponseWriter once the handler has returned, and a
// transport's Close sets a deadline from any goroutine: so every use holds
// alive shared, and Close waits for them before it lets the handler go.
type streamConn struct {
	body io.ReadCloser
	w    http.ResponseWriter
	rc   *http.ResponseController

	alive  sync.RWMutex
	closed atomic.Bool
	wmu    sync.Mutex // serialises writes

	closeOnce sync.Once
	done      chan struct{}

	local, remote net.Addr
}

func newStreamConn(w http.ResponseWriter, r *http.Request) *streamConn {
	c := &streamConn{body: r.Body, w: w, rc: http.NewResponseController(w), done: make(chan struct{})}
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		c.local = a
	} else {
		c.local = streamAddr(r.Host)
	}
	c.remote = streamAddr(r.RemoteAddr)
	return c
}

// use reports whether the stream is still the handler's, holding alive
// shared if so (the caller then releases it).
func (c *streamConn) use() bool {
	c.alive.RLock()
	if c.closed.Load() {
		c.alive.RUnlock()
		return false
	}
	return true
}

func (c *streamConn) Read(p []byte) (int, error) {
	if !c.use() {
		return 0, net.ErrClosed
	}
	defer c.alive.RUnlock()
	return c.body.Read(p)
}

func (c *streamConn) Write(p []byte) (int, error) {
	if !c.use() {
		return 0, net.ErrClosed
	}
	defer c.alive.RUnlock()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	n, err := c.w.Write(p)
	if err == nil {
		err = c.rc.Flush()
	}
	return n, err
}

// Close ends the stream: closing the body ends a read in progress, a write
// blocked on the peer's flow control ends at its deadline (every write of
// the transport has one), and once no use is left the handler, waiting on
// done, may return.
func (c *streamConn) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.body.Close()
		c.alive.Lock()
		c.alive.Unlock() //nolint:staticcheck // waits for the uses in progress
		close(c.done)
	})
	return nil
}

func (c *streamConn) LocalAddr() net.Addr  { return c.local }
func (c *streamConn) RemoteAddr() net.Addr { return c.remote }

func (c *streamConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

// SetReadDeadline and SetWriteDeadline apply where the HTTP server supports
// them (net/http's HTTP/2 does); elsewhere, and once the stream is closed,
// they do nothing.
func (c *streamConn) SetReadDeadline(t time.Time) error {
	if !c.use() {
		return nil
	}
	defer c.alive.RUnlock()
	if err := c.rc.SetReadDeadline(t); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

func (c *streamConn) SetWriteDeadline(t time.Time) error {
	if !c.use() {
		return nil
	}
	defer c.alive.RUnlock()
	if err := c.rc.SetWriteDeadline(t); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

// streamAddr is an address given as a string.
type streamAddr string

func (a streamAddr) Network() string { return "tcp" }
func (a streamAddr) String() string  { return string(a) }
