package roomhub

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-wiredb/wiredb/yproto"
)

// ConnOptions are per-connection settings.
type ConnOptions struct {
	// Codec is the connection's wire protocol; nil means YWebsocket.
	Codec Codec
	// ReadOnly connections receive everything, but their updates are
	// ignored and answered once with auth "permission denied", and they
	// cannot change or remove awareness states other connections set.
	ReadOnly bool
	// IgnoreAwareness drops the connection's awareness updates instead of
	// relaying them (e.g. for read-only viewers who should stay invisible).
	IgnoreAwareness bool
	// RateLimit bounds the messages and bytes a connection may send; a
	// connection over it is closed with 1008. Zero fields mean no limit.
	RateLimit RateLimit
}

// RateLimit is a sustained rate with a burst of one second's worth.
type RateLimit struct {
	MessagesPerSecond float64
	BytesPerSecond    float64
}

// Start runs one connection in room key, on goroutines of the hub's own,
// and returns at once. The caller hands t over and keeps no other use of
// it; the hub closes it. An HTTP handler that hands its connection over
// this way lets its own goroutine end, with the deep stack a request
// handler has grown. Close waits for these connections.
func (h *Hub) Start(key string, t Transport, co ConnOptions) error {
	if !h.register(t) {
		return ErrHubClosed
	}
	go func() {
		s, err := h.open(key, t, co)
		if err != nil {
			h.serving.Done()
			return
		}
		go s.run()
	}()
	return nil
}

// register counts a connection in serving, unless the hub is closed, in
// which case it closes t.
func (h *Hub) register(t Transport) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		t.Close(StatusGoingAway, "server shutting down")
		return false
	}
	h.serving.Add(1)
	return true
}

// session is one connection in its room, between open and the end of run.
type session struct {
	h     *Hub
	r     *room
	c     *conn
	limit *rateLimiter
}

// open joins a connection to its room: it loads the room if needed, starts
// the connection and greets it. On an error the connection is closed with a
// code and a reason, and everything open did is undone.
func (h *Hub) open(key string, t Transport, co ConnOptions) (s *session, err error) {
	h.metrics().ConnOpened()
	codec := co.Codec
	if codec == nil {
		codec = YWebsocket
	}
	c := newConn(t, codec, co.ReadOnly, h)
	c.ignoreAwareness = co.IgnoreAwareness
	var r *room
	joined := false
	defer func() {
		if v := recover(); v != nil {
			h.log().Error("panic while opening a connection", zap.String("room", key),
				zap.Any("panic", v), zap.ByteString("stack", debug.Stack()))
			c.close(StatusInternalError, "internal error")
			err = fmt.Errorf("panic: %v", v)
		}
		if err == nil {
			return
		}
		// Undone in the reverse order of the steps below.
		if joined {
			r.leave(c)
		}
		c.close(StatusInternalError, "internal error") // no-op if closed with a reason
		if r != nil {
			h.release(r)
		}
		<-c.closed
		h.metrics().ConnClosed()
	}()

	r, err = h.acquire(key)
	if errors.Is(err, errTooManyRooms) {
		h.log().Warn("refused a join: max_rooms reached", zap.String("room", key), zap.Int("max_rooms", h.options().MaxRooms))
		h.metrics().Rejected(RejectRoomLimit)
		c.close(StatusTryAgainLater, "server busy: too many rooms open")
		r = nil
		return nil, err
	}
	if err != nil {
		h.log().Error("opening room", zap.String("room", key), zap.Error(err))
		code := StatusInternalError
		if errors.Is(err, errSharedLoad) {
			code = StatusTryAgainLater // the cluster may answer in a moment
		}
		c.close(code, roomUnavailableReason(err))
		r = nil
		return nil, err
	}
	c.start()
	if err := r.join(c); err != nil {
		if errors.Is(err, errRoomFull) {
			h.metrics().Rejected(RejectRoomLimit)
			c.close(StatusTryAgainLater, "room full")
		} else if errors.Is(err, errRoomBroken) {
			pe := storageFailure(err)
			c.close(pe.code, pe.reason)
		} else {
			c.close(StatusInternalError, "room unavailable")
		}
		return nil, err
	}
	joined = true
	return &session{h: h, r: r, c: c, limit: newRateLimiter(co.RateLimit)}, nil
}

// run reads and handles the connection's messages until it ends, then
// closes it and leaves the room. It runs on a
// goroutine of its own, and keeps its frames small: while the connection is
// idle, this goroutine, parked in ReadMessage, is most of what it costs, and
// Go halves an idle goroutine's stack only while less than a quarter of it
// is in use.
func (s *session) run() {
	defer s.finish()
	// No context ends a read: the socket's end does (a close, or the
	// cut at shutdown). A context that every reader shared would be one
	// channel that every read locks (coder/websocket selects on it).
	for {
		typ, msg, rerr := s.c.t.ReadMessage(context.Background())
		if rerr != nil {
			s.readEnded(rerr)
			return
		}
		if perr := s.handleMessage(typ, msg); perr != nil {
			s.c.close(perr.code, perr.reason)
			return
		}
	}
}

// readEnded closes the connection after a failed read with the close code
// it ended with. A message over the size limit was refused (and the
// connection closed) by the transport at its frame header: it is counted
// and logged here.
func (s *session) readEnded(err error) {
	code, ce := closeStatus(err)
	if ce != nil && ce.TooBig {
		s.h.metrics().Rejected(RejectTooBig)
		s.h.log().Warn("closing connection", zap.String("room", s.r.key), zap.Int("code", int(ce.Code)),
			zap.String("reason", ce.Reason), zap.Stringer("reason_code", RejectTooBig))
	}
	s.c.close(code, "")
}

// finish undoes open, in reverse order, once run ends. It is run's
// deferred call, so it also recovers a panic in reading or handling a
// message (one recover for the connection's life rather than a deferred
// call per message), which closes only this connection.
func (s *session) finish() {
	h, r, c := s.h, s.r, s.c
	if v := recover(); v != nil {
		h.log().Error("panic while serving a connection", zap.String("room", r.key),
			zap.Any("panic", v), zap.ByteString("stack", debug.Stack()))
		h.metrics().Rejected(RejectInternal)
		c.close(StatusInternalError, "internal error")
	}
	r.leave(c)
	c.close(StatusInternalError, "internal error") // no-op if closed with a reason
	h.release(r)
	<-c.closed
	h.metrics().ConnClosed()
	h.serving.Done()
}

// handleMessage handles one inbound message and returns how to close the
// connection, if it must be. (A panic in handling is recovered by run's
// finish, which closes only this connection.)
//
//go:noinline
func (s *session) handleMessage(typ MessageType, msg []byte) (perr *protocolError) {
	h, r, c := s.h, s.r, s.c
	h.metrics().Message(Inbound, c.codec.Kind(msg), len(msg))
	switch {
	case !s.limit.allow(len(msg)):
		perr = &protocolError{StatusPolicyViolation, "rate limit exceeded", RejectRateLimit}
	case typ != MessageBinary:
		perr = &protocolError{StatusUnsupportedData, "text frames are not supported", RejectUnsupported}
	default:
		perr = s.handle(msg)
	}
	if perr != nil {
		h.metrics().Rejected(perr.kind)
		// Limits an operator set are worth a warning; malformed input
		// is the client's problem and could flood the log.
		level := zapcore.DebugLevel
		switch perr.kind {
		case RejectRateLimit, RejectDocumentSize:
			level = zapcore.WarnLevel
		}
		if ce := h.log().Check(level, "closing connection"); ce != nil {
			ce.Write(zap.String("room", r.key), zap.Int("code", int(perr.code)), zap.String("reason", perr.reason),
				zap.Stringer("reason_code", perr.kind))
		}
	}
	return perr
}

// handle decodes one inbound message with the connection's codec,
// validates its payload and applies it to the room.
func (s *session) handle(msg []byte) *protocolError {
	r, c := s.r, s.c
	op, err := c.codec.Decode(msg)
	if err != nil {
		if errors.Is(err, yproto.ErrUnknownMessageType) {
			return rejectUnsupported("unsupported message", err)
		}
		return invalid("malformed message", err)
	}
	switch op.Kind {
	case OpSyncStep1:
		if _, err := yproto.ValidateStateVector(op.Payload); err != nil {
			return invalid("invalid state vector", err)
		}
		if err := r.answerStep1(c, op.Payload); err != nil {
			return storageFailure(err)
		}
	case OpSyncStep2, OpUpdate:
		info, err := yproto.ValidateUpdate(op.Payload, yproto.Limits{})
		if err != nil {
			return invalid("invalid update", err)
		}
		if c.readOnly {
			s.denyWrite()
			return nil
		}
		if yproto.IsEmptyUpdate(op.Payload) {
			return nil
		}
		var relay *outbound // a step 2 is relayed as an update
		if op.Kind == OpUpdate {
			relay = newOutbound(OpUpdate, op.Payload, c.codec, msg) // as it came
		} else {
			// A step 2 is checked for new content against the room's
			// coverage: computed here, without the room lock.
			if _, err := r.refreshState(true); err != nil {
				return storageFailure(err)
			}
		}
		if err := r.applyUpdate(c, op.Payload, info, relay, op.Kind == OpSyncStep2); err != nil {
			return storageFailure(err)
		}
	case OpAwareness:
		entries, err := yproto.DecodeAwarenessUpdate(op.Payload, s.h.options().MaxAwarenessEntries)
		if err != nil {
			return invalid("invalid awareness update", err)
		}
		if c.ignoreAwareness {
			// Echoed to the sender alone: a y-websocket client reconnects
			// after 30 s without a message, and a lone viewer's own
			// awareness renewals are what it would otherwise get.
			if !c.enqueue(msg) {
				return storageFailure(errQueueFull)
			}
			return nil
		}
		r.publishAwareness(r.applyAwareness(c, entries, newOutbound(OpAwareness, op.Payload, c.codec, msg)))
	case OpQueryAwareness:
		if err := r.sendAwareness(c); err != nil {
			return storageFailure(err)
		}
	}
	return nil
}

// denyWrite tells a read-only client once that its writes are ignored.
func (s *session) denyWrite() {
	c := s.c
	c.mu.Lock()
	already := c.deniedMsg
	c.deniedMsg = true
	c.mu.Unlock()
	if !already {
		c.enqueue(c.codec.AppendPermissionDenied(nil, "read-only connection"))
	}
}
