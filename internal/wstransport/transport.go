package wstransport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/caddy-wiredb/wiredb/internal/wsframe"
	"github.com/caddy-wiredb/wiredb/roomhub"
)

// Options are Accept's options.
type Options struct {
	// OriginPatterns are the hosts, besides the request's own, allowed in
	// an Origin header, matched as by websocket.AcceptOptions. Default:
	// none; a request from another origin gets 403.
	OriginPatterns []string
	// InsecureSkipVerify accepts any origin. Default false.
	InsecureSkipVerify bool
	// Subprotocols are the subprotocols Accept may select from the
	// client's offer. Default: none.
	Subprotocols []string
	// MaxMessageSize bounds one inbound message, in bytes. A message
	// announcing more is refused at its frame header: the connection is
	// closed with 1009. Zero means roomhub.DefaultMaxMessageSize; a
	// negative value means no limit.
	MaxMessageSize int64
}

// ErrClosed is returned (wrapped) by WriteMessages once Close or CloseNow
// has been called. It wraps net.ErrClosed.
var ErrClosed = fmt.Errorf("wstransport: connection closing: %w", net.ErrClosed)

// closeDrainWait is how long Close waits for a write in progress before it
// cuts the connection, and how long it gives the close frame after that:
// a client that stopped reading is cut 5 s after the close is decided.
// It is also how long coder/websocket gives a close frame.
const closeDrainWait = 5 * time.Second

// Conn is one upgraded WebSocket connection: a roomhub.Transport. Its
// methods follow roomhub.Transport's rules on concurrency: ReadMessage and
// WriteMessages by one goroutine each at a time; Ping, Close and CloseNow
// from any goroutine.
type Conn struct {
	ws    *websocket.Conn
	raw   net.Conn // the hijacked connection; nil if not known
	sock  *socket  // nil on the fallback path: writes go through ws
	limit int64

	tooBig    atomic.Pointer[roomhub.CloseError] // set when the guard tripped
	closing   atomic.Bool
	closeOnce sync.Once
}

// Accept upgrades an HTTP/1.1 WebSocket request, as websocket.Accept does,
// and returns the connection. On an error it has written the HTTP response
// (403 for a foreign origin, 426 or 400 for a bad handshake, 501 for a
// connection that cannot be hijacked).
func Accept(w http.ResponseWriter, r *http.Request, opts Options) (*Conn, error) {
	return accept(w, r, opts, true)
}

// accept is Accept; with batched false, or a writer that cannot be
// hijacked, messages are written through coder/websocket's Write, one
// write(2) each.
func accept(w http.ResponseWriter, r *http.Request, opts Options, batched bool) (*Conn, error) {
	limit := opts.MaxMessageSize
	if limit == 0 {
		limit = roomhub.DefaultMaxMessageSize
	}
	guard := wsframe.NewGuard(limit)
	w = guard.Wrap(w)
	var hj *hijacker
	// Wrap returns a Hijacker exactly when it could find one beneath w;
	// otherwise coder/websocket fails with 501.
	if _, ok := w.(http.Hijacker); ok && batched {
		hj = &hijacker{ResponseWriter: w, guard: guard}
		w = hj
	}
	c := &Conn{limit: limit}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		OriginPatterns:     opts.OriginPatterns,
		InsecureSkipVerify: opts.InsecureSkipVerify,
		Subprotocols:       opts.Subprotocols,
		OnPingReceived:     c.onPing,
	})
	if err != nil {
		return nil, fmt.Errorf("wstransport: %w", err)
	}
	c.ws, c.raw = ws, guard.Conn()
	if hj != nil {
		c.sock = hj.sock
	}
	ws.SetReadLimit(limit)
	guard.OnTooBig(func() { c.onTooBig(guard.Announced()) })
	return c, nil
}

// onPing tells coder/websocket whether to answer a ping: not once Close
// has begun. After its close frame, coder/websocket fails to write the
// pong, and a failure while it waits for the peer's close frame ends the
// handshake at once: it closes the connection, with the peer's bytes
// unread, which resets it (the peer then loses what it had not read yet,
// our close frame included).
func (c *Conn) onPing(context.Context, []byte) bool { return !c.closing.Load() }

// onTooBig runs on the reading goroutine when a message announced more than
// the limit; it must not block. The reader stays inside that message until
// the connection closes; Close, run aside, does that.
func (c *Conn) onTooBig(announced int64) {
	ce := &roomhub.CloseError{
		Code:   roomhub.StatusMessageTooBig,
		Reason: fmt.Sprintf("message of %d bytes exceeds the limit of %d bytes", announced, c.limit),
		TooBig: true,
	}
	c.tooBig.Store(ce)
	go c.Close(ce.Code, ce.Reason) // ends within seconds: see Close
}

// ReadMessage implements roomhub.Transport. A message over the size limit
// ends the connection with an error wrapping a *roomhub.CloseError with
// TooBig set; a close frame from the peer, with one carrying the peer's
// code and reason.
func (c *Conn) ReadMessage(ctx context.Context) (roomhub.MessageType, []byte, error) {
	typ, msg, err := c.ws.Read(ctx)
	if err == nil {
		if typ == websocket.MessageText {
			return roomhub.MessageText, msg, nil
		}
		return roomhub.MessageBinary, msg, nil
	}
	if ce := c.tooBig.Load(); ce != nil {
		return 0, nil, fmt.Errorf("wstransport: reading: %w (%w)", ce, err)
	}
	if errors.Is(err, websocket.ErrMessageTooBig) {
		// coder/websocket's own limit, which the guard makes unreachable
		// without compression; it has sent 1009.
		ce := &roomhub.CloseError{
			Code:   roomhub.StatusMessageTooBig,
			Reason: fmt.Sprintf("message exceeds the limit of %d bytes", c.limit),
			TooBig: true,
		}
		return 0, nil, fmt.Errorf("wstransport: reading: %w (%w)", ce, err)
	}
	var wce websocket.CloseError
	if errors.As(err, &wce) {
		ce := &roomhub.CloseError{Code: roomhub.StatusCode(wce.Code), Reason: wce.Reason}
		return 0, nil, fmt.Errorf("wstransport: reading: %w", ce)
	}
	return 0, nil, fmt.Errorf("wstransport: reading: %w", err)
}

// WriteMessages implements roomhub.Transport. The messages go out as binary
// frames in one write, after the socket's write lock is free; timeout
// bounds the wait for the lock and the write together. After Close or
// CloseNow it returns ErrClosed.
func (c *Conn) WriteMessages(msgs [][]byte, timeout time.Duration) error {
	if c.closing.Load() {
		return ErrClosed
	}
	if c.sock == nil {
		return c.writeEach(msgs, timeout)
	}
	deadline := time.Now().Add(timeout)
	if err := c.sock.writeBatch(msgs, deadline); err != nil {
		return fmt.Errorf("wstransport: writing %d messages: %w", len(msgs), err)
	}
	return nil
}

// writeEach writes msgs through coder/websocket, one frame and one write(2)
// each.
func (c *Conn) writeEach(msgs [][]byte, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for i, msg := range msgs {
		if err := c.ws.Write(ctx, websocket.MessageBinary, msg); err != nil {
			return fmt.Errorf("wstransport: writing message %d of %d: %w", i+1, len(msgs), err)
		}
	}
	return nil
}

// Ping implements roomhub.Transport. The pong is read by ReadMessage, which
// must be running.
func (c *Conn) Ping(ctx context.Context) error {
	if err := c.ws.Ping(ctx); err != nil {
		return fmt.Errorf("wstransport: %w", err)
	}
	return nil
}

// Close implements roomhub.Transport. It waits for a batch in progress at
// most closeDrainWait, then cuts the connection (the stream would end
// inside a frame, so no close frame can follow); otherwise it sends the
// close frame, with what is left of closeDrainWait as its write deadline,
// and waits for the peer's close frame for at most 5 s (coder/websocket's
// wait). Calls after the first Close or CloseNow return net.ErrClosed at
// once.
func (c *Conn) Close(code roomhub.StatusCode, reason string) error {
	first := false
	c.closeOnce.Do(func() { first = true })
	if !first {
		return net.ErrClosed
	}
	c.closing.Store(true)
	if s := c.sock; s != nil {
		deadline := time.Now().Add(closeDrainWait)
		if err := s.acquire(closeDrainWait); err != nil {
			c.cut()
			return fmt.Errorf("wstransport: closing: waiting for a write in progress: %w", err)
		}
		// No batch can follow: the deadline stays, for the close frame
		// and any pong before it.
		s.closing = true
		s.raw.SetWriteDeadline(deadline)
		s.release()
	}
	if err := c.ws.Close(websocket.StatusCode(code), reason); err != nil {
		return fmt.Errorf("wstransport: closing: %w", err)
	}
	return nil
}

// CloseNow implements roomhub.Transport. It closes the connection at once,
// even while a Close is in progress (which then ends early).
func (c *Conn) CloseNow() error {
	c.closeOnce.Do(func() {})
	c.closing.Store(true)
	if err := c.cut(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("wstransport: %w", err)
	}
	return nil
}

// cut closes the hijacked connection, ending any read or write on it (and
// a Close in progress), then coder/websocket's.
func (c *Conn) cut() error {
	if c.sock != nil {
		c.sock.close()
	} else if c.raw != nil {
		c.raw.Close()
	}
	return c.ws.CloseNow()
}

// Interface guards
var _ roomhub.Transport = (*Conn)(nil)
