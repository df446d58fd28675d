package roomhub

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

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

// Start runs one y-websocket connection in room key, on goroutines of the
// hub's own, and returns at once; it greets the client without waiting for
// it. See StartWith.
func (h *Hub) Start(key string, t Transport, co ConnOptions) error {
	return h.StartWith(t, StartOptions{ConnOptions: co, Room: key})
}

// StartOptions say how to serve one socket.
type StartOptions struct {
	// ConnOptions apply to a y-websocket connection; for Hocuspocus
	// documents, ReadOnly and IgnoreAwareness are the defaults when
	// Authorize is nil, and RateLimit bounds the whole socket.
	ConnOptions
	// Protocols the socket may speak; the zero set means y-websocket only.
	// With more than one, the client's first message tells which, and the
	// server sends nothing before it.
	Protocols Protocols
	// Room is the room of a y-websocket connection.
	Room string
	// RefuseYWebsocket, when set, closes a y-websocket client with 1008
	// and this reason as soon as its first message shows its protocol: a
	// route that admits Hocuspocus providers without a token in the
	// request (they send it later, per document) still needs one from
	// y-websocket clients.
	RefuseYWebsocket string
	Hocuspocus       HocuspocusOptions
}

// HocuspocusOptions configure the Hocuspocus protocol.
type HocuspocusOptions struct {
	// Authorize decides what a document's token allows: name is the
	// document name (without a provider's sessionId) and token what the
	// provider sent, maybe empty. An error refuses the document, its text
	// being the reason the provider gets. Nil accepts every token, with
	// the document name as its room key.
	Authorize func(name, token string) (DocumentAccess, error)
	// MaxDocuments bounds the documents open at once on one socket; the
	// zero value means DefaultMaxDocuments.
	MaxDocuments int
}

// DefaultMaxDocuments bounds the documents one Hocuspocus socket may have
// open at once.
const DefaultMaxDocuments = 100

// DocumentAccess is what a Hocuspocus document's token allows.
type DocumentAccess struct {
	Key             string // the room key of the document
	ReadOnly        bool
	IgnoreAwareness bool
}

// StartWith serves one socket on goroutines of the hub's own, and returns
// at once. The caller hands t over and keeps no other use of it; the hub
// closes it. An HTTP handler that hands its connection over this way lets
// its own goroutine end, with the deep stack a request handler has grown.
// Close waits for these connections.
func (h *Hub) StartWith(t Transport, o StartOptions) error {
	if !h.register(t) {
		return ErrHubClosed
	}
	go h.serve(t, o)
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
	if h.sockets == nil {
		h.sockets = make(map[Transport]struct{})
	}
	h.sockets[t] = struct{}{}
	return true
}

// served undoes register once a socket's serving ended.
func (h *Hub) served(t Transport) {
	h.mu.Lock()
	delete(h.sockets, t)
	h.mu.Unlock()
	h.serving.Done()
}

// serve finds the socket's protocol, then serves it until it ends.
func (h *Hub) serve(t Transport, o StartOptions) {
	if o.Protocols == 0 || o.Protocols == ProtocolSet(ProtocolYWebsocket) && o.RefuseYWebsocket == "" {
		// Greeted at once, as y-websocket's own server does.
		if s, err := h.open(o.Room, t, o.ConnOptions); err == nil {
			s.run(0, nil)
		} else {
			h.served(t)
		}
		return
	}
	typ, first, err := h.readFirst(t)
	if err != nil {
		code, ce := closeStatus(err)
		h.countTooBig(ce, "")
		t.Close(code, "")
		h.served(t)
		return
	}
	refuse := func(code StatusCode, reason string, why RejectReason) {
		h.metrics().Rejected(why)
		t.Close(code, reason)
		h.served(t)
	}
	switch {
	case typ != MessageBinary:
		refuse(StatusUnsupportedData, "text frames are not supported", RejectUnsupported)
	case yproto.LooksLikeHocuspocusAuth(first):
		if !o.Protocols.Has(ProtocolHocuspocus) {
			refuse(StatusPolicyViolation, "this endpoint does not serve Hocuspocus providers", RejectUnsupported)
			return
		}
		newMux(h, t, o).run(first)
	case !o.Protocols.Has(ProtocolYWebsocket):
		refuse(StatusPolicyViolation, "this endpoint serves Hocuspocus providers only", RejectUnsupported)
	case o.RefuseYWebsocket != "":
		refuse(StatusPolicyViolation, o.RefuseYWebsocket, RejectUnauthorized)
	default:
		s, err := h.open(o.Room, t, o.ConnOptions)
		if err != nil {
			h.served(t)
			return
		}
		s.run(typ, first)
	}
}

// readFirst reads a socket's first message, which tells its protocol. A
// client that sends none within the ping interval is closed: every Yjs
// client speaks first.
func (h *Hub) readFirst(t Transport) (MessageType, []byte, error) {
	wait := h.options().PingInterval
	timer := time.AfterFunc(wait, func() {
		h.metrics().Rejected(RejectPingTimeout)
		t.Close(StatusPolicyViolation, "no message within "+wait.String())
	})
	defer timer.Stop()
	return t.ReadMessage(context.Background())
}

// session is one connection in its room, between open and the end of run;
// for a Hocuspocus socket, one of its documents (mux.go).
type session struct {
	h     *Hub
	r     *room
	c     *conn
	limit *rateLimiter
}

// open joins a y-websocket connection to its room. On an error the
// connection is closed with a code and a reason.
func (h *Hub) open(key string, t Transport, co ConnOptions) (*session, error) {
	h.metrics().ConnOpened()
	codec := co.Codec
	if codec == nil {
		codec = YWebsocket
	}
	c := newConn(t, codec, co.ReadOnly, h)
	c.ignoreAwareness = co.IgnoreAwareness
	c.start()
	s, err := h.enter(key, c)
	if err != nil {
		h.metrics().ConnClosed()
		return nil, err
	}
	s.limit = newRateLimiter(co.RateLimit)
	return s, nil
}

// enter joins c to room key: it loads the room if needed and greets c. On
// an error c is closed with a code and a reason (and closed when enter
// returns), and everything enter did is undone.
func (h *Hub) enter(key string, c *conn) (s *session, err error) {
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
	return &session{h: h, r: r, c: c}, nil
}

// run reads and handles the connection's messages until it ends, then
// closes it and leaves the room. It runs on a
// goroutine of its own, and keeps its frames small: while the connection is
// idle, this goroutine, parked in ReadMessage, is most of what it costs, and
// Go halves an idle goroutine's stack only while less than a quarter of it
// is in use.
func (s *session) run(firstType MessageType, first []byte) {
	defer s.finish()
	if first != nil {
		if perr := s.handleMessage(firstType, first); perr != nil {
			s.c.close(perr.code, perr.reason)
			return
		}
	}
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
// it ended with.
func (s *session) readEnded(err error) { s.h.readEnded(s.c, s.r.key, err) }

// readEnded closes c, whose socket's read failed with err, with the close
// code it ended with. A message over the size limit was refused (and the
// connection closed) by the transport at its frame header: it is counted
// and logged here.
func (h *Hub) readEnded(c *conn, room string, err error) {
	code, ce := closeStatus(err)
	h.countTooBig(ce, room)
	c.close(code, "")
}

// countTooBig counts and logs a connection the transport closed for a
// message over its size limit.
func (h *Hub) countTooBig(ce *CloseError, room string) {
	if ce != nil && ce.TooBig {
		h.metrics().Rejected(RejectTooBig)
		h.log().Warn("closing connection", zap.String("room", room), zap.Int("code", int(ce.Code)),
			zap.String("reason", ce.Reason), zap.Stringer("reason_code", RejectTooBig))
	}
}

// finish undoes open, in reverse order, once run ends. It is run's
// deferred call, so it also recovers a panic in reading or handling a
// message (one recover for the connection's life rather than a deferred
// call per message), which closes only this connection.
func (s *session) finish() {
	if v := recover(); v != nil {
		s.h.log().Error("panic while serving a connection", zap.String("room", s.r.key),
			zap.Any("panic", v), zap.ByteString("stack", debug.Stack()))
		s.h.metrics().Rejected(RejectInternal)
		s.c.close(StatusInternalError, "internal error")
	}
	s.leave()
	s.h.metrics().ConnClosed()
	s.h.served(s.c.t)
}

// leave takes the connection out of its room and closes it (if it is not
// closed yet), and returns once it is.
func (s *session) leave() {
	s.r.leave(s.c)
	s.c.close(StatusInternalError, "internal error") // no-op if closed with a reason
	s.h.release(s.r)
	<-s.c.closed
}

// handleMessage handles one inbound message and returns how to close the
// connection, if it must be. (A panic in handling is recovered by run's
// finish, which closes only this connection.)
//
//go:noinline
func (s *session) handleMessage(typ MessageType, msg []byte) (perr *protocolError) {
	s.h.metrics().Message(Inbound, s.c.codec.Protocol(), s.c.codec.Kind(msg), len(msg))
	switch {
	case !s.limit.allow(len(msg)):
		perr = errRateLimit
	case typ != MessageBinary:
		perr = errTextFrame
	default:
		perr = s.handle(msg)
	}
	if perr != nil {
		s.h.rejected(s.r.key, perr)
	}
	return perr
}

var (
	errRateLimit = &protocolError{StatusPolicyViolation, "rate limit exceeded", RejectRateLimit}
	errTextFrame = &protocolError{StatusUnsupportedData, "text frames are not supported", RejectUnsupported}
)

// rejected counts and logs a connection about to be closed for perr.
func (h *Hub) rejected(room string, perr *protocolError) {
	h.metrics().Rejected(perr.kind)
	// Limits an operator set are worth a warning; malformed input is the
	// client's problem and could flood the log.
	level := zapcore.DebugLevel
	switch perr.kind {
	case RejectRateLimit, RejectDocumentSize:
		level = zapcore.WarnLevel
	}
	if ce := h.log().Check(level, "closing connection"); ce != nil {
		ce.Write(zap.String("room", room), zap.Int("code", int(perr.code)), zap.String("reason", perr.reason),
			zap.Stringer("reason_code", perr.kind))
	}
}

// handle decodes one inbound message with the connection's codec,
// validates its payload and applies it to the room.
func (s *session) handle(msg []byte) *protocolError {
	op, err := s.c.codec.Decode(msg)
	if err != nil {
		return decodeError(err)
	}
	return s.handleOp(op, msg)
}

// decodeError closes a connection whose message could not be decoded.
func decodeError(err error) *protocolError {
	if errors.Is(err, yproto.ErrUnknownMessageType) {
		return rejectUnsupported("unsupported message", err)
	}
	return invalid("malformed message", err)
}

// handleOp validates the payload of op, decoded from msg, and applies it to
// the room.
func (s *session) handleOp(op Op, msg []byte) *protocolError {
	r, c := s.r, s.c
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
			return s.denyWrite(op, info)
		}
		if yproto.IsEmptyUpdate(op.Payload) {
			c.acknowledge()
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
	case OpStateless:
		r.relayStateless(c, op.Payload, msg)
	}
	return nil
}

// denyWrite tells a read-only client that its write is ignored: once, for
// y-websocket; with an acknowledgement of each write, for Hocuspocus (as
// its server does: a step 2 with nothing new counts as applied).
func (s *session) denyWrite(op Op, info yproto.UpdateInfo) *protocolError {
	c := s.c
	if c.applied != nil {
		applied := false
		if op.Kind == OpSyncStep2 {
			covered, err := s.r.covers(info)
			if err != nil {
				return storageFailure(err)
			}
			applied = covered
		}
		if applied {
			c.acknowledge()
		} else {
			c.enqueue(c.codec.AppendSyncStatus(nil, false))
		}
		return nil
	}
	c.mu.Lock()
	already := c.deniedMsg
	c.deniedMsg = true
	c.mu.Unlock()
	if !already {
		c.enqueue(c.codec.AppendPermissionDenied(nil, "read-only connection"))
	}
	return nil
}
