package roomhub

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-wiredb/wiredb/storage"
	"github.com/caddy-wiredb/wiredb/yproto"
)

var (
	// ErrHubClosed is returned by Serve once Close has begun.
	ErrHubClosed = errors.New("roomhub: hub closed")
	errQueueFull = errors.New("roomhub: outbound queue full")

	errTooManyRooms     = errors.New("roomhub: too many rooms")
	errRoomFull         = errors.New("roomhub: room full")
	errDocumentTooLarge = errors.New("roomhub: document size limit")
)

// Hub owns the rooms of one data directory. It is safe for concurrent use.
type Hub struct {
	store *storage.Store
	opts  atomic.Pointer[Options] // replaced whole by Reconfigure

	ctx    context.Context // cancelled by Close once the grace period ends
	cancel context.CancelFunc

	mu     sync.Mutex
	rooms  map[string]*room
	closed bool

	serving    sync.WaitGroup // one per Serve call
	background sync.WaitGroup // the fsync loop
}

// New returns a Hub storing rooms in store.
func New(store *storage.Store, opts Options) *Hub {
	ctx, cancel := context.WithCancel(context.Background())
	h := &Hub{
		store:  store,
		ctx:    ctx,
		cancel: cancel,
		rooms:  make(map[string]*room),
	}
	h.Reconfigure(opts)
	h.background.Add(1)
	go h.syncLoop()
	return h
}

// Reconfigure replaces the hub's options, e.g. on a config reload. Rooms and
// connections carry on: every later decision (fsync, compaction, queue
// bounds, timeouts, idle unload) follows the new options; a connection's
// ping period is the one it started with.
func (h *Hub) Reconfigure(opts Options) {
	opts = opts.withDefaults()
	h.opts.Store(&opts)
}

func (h *Hub) options() *Options { return h.opts.Load() }

func (h *Hub) log() *zap.Logger { return h.options().Logger }

func (h *Hub) metrics() Metrics { return h.options().Metrics }

// ConnOptions are per-connection settings; zero values take the hub's.
type ConnOptions struct {
	// ReadOnly connections receive everything, but their updates are
	// ignored and answered once with auth "permission denied".
	ReadOnly bool
	// IgnoreAwareness drops the connection's awareness updates instead of
	// relaying them (e.g. for read-only viewers who should stay invisible).
	IgnoreAwareness bool
	// MaxMessageSize bounds one inbound message; zero means the hub's.
	MaxMessageSize int64
	// FrameGuard, when set, reports a message announced (by its frame
	// header) to be larger than MaxMessageSize, before its payload arrives;
	// the connection is then closed with 1009 at once. Without it, the
	// connection is closed only once MaxMessageSize bytes have arrived.
	FrameGuard FrameGuard
	// RawConn, when set, is the connection under the WebSocket (see
	// wsframe.Guard.Conn): messages to the client are then written to it as
	// ready-made frames, many per write(2).
	RawConn net.Conn
	// RateLimit bounds the messages and bytes a connection may send; a
	// connection over it is closed with 1008. Zero fields mean no limit.
	RateLimit RateLimit
}

// FrameGuard watches the frame headers of a connection's inbound
// messages (see internal/wsframe).
type FrameGuard interface {
	// OnTooBig arranges for f to run once a message announced more than the
	// limit (at once if one already has). f must not block.
	OnTooBig(f func())
	// Announced is that message's announced size.
	Announced() int64
}

// RateLimit is a sustained rate with a burst of one second's worth.
type RateLimit struct {
	MessagesPerSecond float64
	BytesPerSecond    float64
}

// Serve runs one WebSocket connection in room key until it ends. The caller
// has accepted ws and keeps no other use of it. Serve closes ws.
func (h *Hub) Serve(key string, ws *websocket.Conn, co ConnOptions) error {
	if !h.register(ws) {
		return ErrHubClosed
	}
	s, err := h.open(key, ws, co)
	if err != nil {
		h.serving.Done()
		return err
	}
	done := make(chan error, 1)
	go s.run(done)
	return <-done
}

// Start is Serve on goroutines of the hub's own, and returns at once. An
// HTTP handler that hands its connection over this way lets its own
// goroutine end, with the deep stack a request handler has grown. Close
// waits for these connections as for Serve calls.
func (h *Hub) Start(key string, ws *websocket.Conn, co ConnOptions) error {
	if !h.register(ws) {
		return ErrHubClosed
	}
	go func() {
		s, err := h.open(key, ws, co)
		if err != nil {
			h.serving.Done()
			return
		}
		go s.run(nil)
	}()
	return nil
}

// register counts a connection in serving, unless the hub is closed, in
// which case it closes ws.
func (h *Hub) register(ws *websocket.Conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		ws.Close(websocket.StatusGoingAway, "server shutting down")
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

// open joins ws to its room: it loads the room if needed, starts the
// connection and greets it. On an error the connection is closed with a
// code and a reason, and everything open undid is undone.
func (h *Hub) open(key string, ws *websocket.Conn, co ConnOptions) (s *session, err error) {
	h.metrics().ConnOpened()
	limit := co.MaxMessageSize
	if limit <= 0 {
		limit = h.options().MaxMessageSize
	}
	ws.SetReadLimit(limit)
	c := newConn(ws, co.RawConn, co.ReadOnly, h)
	c.ignoreAwareness = co.IgnoreAwareness
	if g := co.FrameGuard; g != nil {
		// The reader is stuck inside the frame: closing is all there is
		// to do, and close does not block.
		g.OnTooBig(func() {
			h.metrics().Rejected(RejectTooBig)
			h.log().Warn("closing connection", zap.String("room", key), zap.Int("code", int(websocket.StatusMessageTooBig)),
				zap.Int64("announced_bytes", g.Announced()), zap.Int64("max_message_size", limit), zap.Stringer("reason_code", RejectTooBig))
			c.close(websocket.StatusMessageTooBig,
				fmt.Sprintf("message of %d bytes exceeds the limit of %d bytes", g.Announced(), limit))
		})
	}
	var r *room
	joined := false
	defer func() {
		if v := recover(); v != nil {
			h.log().Error("panic while opening a connection", zap.String("room", key),
				zap.Any("panic", v), zap.ByteString("stack", debug.Stack()))
			c.close(websocket.StatusInternalError, "internal error")
			err = fmt.Errorf("panic: %v", v)
		}
		if err == nil {
			return
		}
		// Undone in the reverse order of the steps below.
		if joined {
			r.leave(c)
		}
		c.close(websocket.StatusInternalError, "internal error") // no-op if closed with a reason
		if r != nil {
			h.release(r)
		}
		<-c.wsClosed
		h.metrics().ConnClosed()
	}()

	r, err = h.acquire(key)
	if errors.Is(err, errTooManyRooms) {
		h.log().Warn("refused a join: max_rooms reached", zap.String("room", key), zap.Int("max_rooms", h.options().MaxRooms))
		h.metrics().Rejected(RejectRoomLimit)
		c.close(websocket.StatusTryAgainLater, "server busy: too many rooms open")
		r = nil
		return nil, err
	}
	if err != nil {
		h.log().Error("opening room", zap.String("room", key), zap.Error(err))
		c.close(websocket.StatusInternalError, roomUnavailableReason(err))
		r = nil
		return nil, err
	}
	c.start()
	if err := r.join(c); err != nil {
		if errors.Is(err, errRoomFull) {
			h.metrics().Rejected(RejectRoomLimit)
			c.close(websocket.StatusTryAgainLater, "room full")
		} else {
			c.close(websocket.StatusInternalError, "room unavailable")
		}
		return nil, err
	}
	joined = true
	return &session{h: h, r: r, c: c, limit: newRateLimiter(co.RateLimit)}, nil
}

// run reads and handles the connection's messages until it ends, then
// closes it, leaves the room and reports to done (if not nil). It runs on a
// goroutine of its own, and keeps its frames small: while the connection is
// idle, this goroutine, parked in Read, is most of what it costs, and Go
// halves an idle goroutine's stack only while less than a quarter of it is
// in use. (With the setup's frames below the read, it stayed at 8 KiB.)
func (s *session) run(done chan<- error) {
	var err error
	defer s.finish(done, &err)
	for {
		typ, frame, rerr := s.c.ws.Read(s.h.ctx)
		if rerr != nil {
			code := websocket.StatusGoingAway
			if cs := websocket.CloseStatus(rerr); cs != -1 {
				code = cs
			}
			s.c.close(code, "")
			return
		}
		if perr := s.handleMessage(typ, frame); perr != nil {
			s.c.close(perr.code, perr.reason)
			err = perr
			return
		}
	}
}

// finish undoes open, in reverse order, once run ends. It is run's
// deferred call, so it also recovers a panic in reading or handling a
// message (one recover for the connection's life rather than a deferred
// call per message), which closes only this connection.
func (s *session) finish(done chan<- error, err *error) {
	h, r, c := s.h, s.r, s.c
	if v := recover(); v != nil {
		h.log().Error("panic while serving a connection", zap.String("room", r.key),
			zap.Any("panic", v), zap.ByteString("stack", debug.Stack()))
		h.metrics().Rejected(RejectInternal)
		c.close(websocket.StatusInternalError, "internal error")
		*err = fmt.Errorf("panic: %v", v)
	}
	r.leave(c)
	c.close(websocket.StatusInternalError, "internal error") // no-op if closed with a reason
	h.release(r)
	<-c.wsClosed
	h.metrics().ConnClosed()
	h.serving.Done()
	if done != nil {
		done <- *err
	}
}

// handleMessage handles one inbound message and returns how to close the
// connection, if it must be. (A panic in handling is recovered by run's
// finish, which closes only this connection.)
//
//go:noinline
func (s *session) handleMessage(typ websocket.MessageType, frame []byte) (perr *protocolError) {
	h, r, c := s.h, s.r, s.c
	h.metrics().Message(Inbound, kindOf(frame), len(frame))
	switch {
	case !s.limit.allow(len(frame)):
		perr = &protocolError{websocket.StatusPolicyViolation, "rate limit exceeded", RejectRateLimit}
	case typ != websocket.MessageBinary:
		perr = &protocolError{websocket.StatusUnsupportedData, "text frames are not supported", RejectUnsupported}
	default:
		perr = h.handle(r, c, frame)
	}
	if perr != nil {
		h.metrics().Rejected(perr.kind)
		// Limits an operator set are worth a warning; malformed input
		// is the client's problem and could flood the log.
		level := zapcore.DebugLevel
		switch perr.kind {
		case RejectRateLimit, RejectDocumentSize, RejectTooBig:
			level = zapcore.WarnLevel
		}
		if ce := h.log().Check(level, "closing connection"); ce != nil {
			ce.Write(zap.String("room", r.key), zap.Int("code", int(perr.code)), zap.String("reason", perr.reason),
				zap.Stringer("reason_code", perr.kind))
		}
	}
	return perr
}

// protocolError closes a connection with a WebSocket status and a reason.
type protocolError struct {
	code   websocket.StatusCode
	reason string
	kind   RejectReason
}

func (e *protocolError) Error() string { return fmt.Sprintf("%d %s", e.code, e.reason) }

func invalid(what string, err error) *protocolError {
	return &protocolError{websocket.StatusInvalidFramePayloadData, truncateReason(what + ": " + errorDetail(err)), RejectMalformed}
}

// errorDetail shortens a yproto error for a close reason, which holds 123
// bytes: "yproto: malformed input: string length 9 exceeds the 2 bytes left
// at byte 5" becomes its detail after the category, which the detail and
// the reason's own prefix already convey.
func errorDetail(err error) string {
	s := err.Error()
	rest, ok := strings.CutPrefix(s, "yproto: ")
	if !ok {
		return s
	}
	if _, detail, found := strings.Cut(rest, ": "); found && detail != "" {
		return detail
	}
	return rest
}

// testHookHandle, when set by a test, runs before each inbound message is
// handled (to inject panics).
var testHookHandle func(frame []byte)

// handle applies one inbound message.
func (h *Hub) handle(r *room, c *conn, frame []byte) *protocolError {
	if testHookHandle != nil {
		testHookHandle(frame)
	}
	msg, err := yproto.DecodeMessage(frame)
	if err != nil {
		if errors.Is(err, yproto.ErrUnknownMessageType) {
			return &protocolError{websocket.StatusUnsupportedData, truncateReason("unsupported message: " + errorDetail(err)), RejectUnsupported}
		}
		return invalid("malformed message", err)
	}
	switch msg.Type {
	case yproto.MessageSync:
		switch msg.Sync {
		case yproto.SyncStep1:
			if _, err := yproto.ValidateStateVector(msg.Payload); err != nil {
				return invalid("invalid state vector", err)
			}
			if err := r.answerStep1(c, msg.Payload); err != nil {
				return storageFailure(err)
			}
		case yproto.SyncStep2, yproto.SyncUpdate:
			info, err := yproto.ValidateUpdate(msg.Payload, yproto.Limits{})
			if err != nil {
				return invalid("invalid update", err)
			}
			if c.readOnly {
				h.denyWrite(c)
				return nil
			}
			if yproto.IsEmptyUpdate(msg.Payload) {
				return nil
			}
			relay := frame
			if msg.Sync == yproto.SyncStep2 {
				relay = nil // relayed as an update message
				// It is checked for new content against the room's
				// coverage: computed here, without the room lock.
				if _, err := r.refreshState(true); err != nil {
					return storageFailure(err)
				}
			}
			if err := r.applyUpdate(c, msg.Payload, info, relay, msg.Sync == yproto.SyncStep2); err != nil {
				return storageFailure(err)
			}
		}
	case yproto.MessageAwareness:
		entries, err := yproto.DecodeAwarenessUpdate(msg.Payload, h.options().MaxAwarenessEntries)
		if err != nil {
			return invalid("invalid awareness update", err)
		}
		if c.ignoreAwareness {
			// Echoed to the sender alone: a y-websocket client reconnects
			// after 30 s without a message, and a lone viewer's own
			// awareness renewals are what it would otherwise get.
			if !c.enqueue(frame) {
				return storageFailure(errQueueFull)
			}
			return nil
		}
		r.applyAwareness(c, entries, frame)
	case yproto.MessageQueryAwareness:
		if err := r.sendAwareness(c); err != nil {
			return storageFailure(err)
		}
	case yproto.MessageAuth:
		// Clients have nothing to say in the auth protocol; ignore it as
		// y-websocket's server does.
	}
	return nil
}

func storageFailure(err error) *protocolError {
	if errors.Is(err, errQueueFull) {
		return &protocolError{websocket.StatusTryAgainLater, "client too slow: outbound queue full", RejectSlowClient}
	}
	if errors.Is(err, errDocumentTooLarge) {
		return &protocolError{websocket.StatusPolicyViolation, "update refused: document size limit reached", RejectDocumentSize}
	}
	return &protocolError{websocket.StatusInternalError, "server could not store the update", RejectInternal}
}

// denyWrite tells a read-only client once that its writes are ignored.
func (h *Hub) denyWrite(c *conn) {
	c.mu.Lock()
	already := c.deniedMsg
	c.deniedMsg = true
	c.mu.Unlock()
	if !already {
		c.enqueue(yproto.AppendPermissionDenied(nil, "read-only connection"))
	}
}

// acquire returns the loaded room of key, loading it if needed. Concurrent
// callers for the same key wait for a single load.
func (h *Hub) acquire(key string) (*room, error) {
	for {
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			return nil, ErrHubClosed
		}
		r := h.rooms[key]
		if r != nil && r.unloading {
			// Wait until its file is closed, then load it afresh.
			ch := r.unloaded
			h.mu.Unlock()
			<-ch
			continue
		}
		if r == nil {
			if max := h.options().MaxRooms; max > 0 && len(h.rooms) >= max {
				h.mu.Unlock()
				return nil, errTooManyRooms
			}
			r = newRoom(h, key)
			h.rooms[key] = r
			r.refs++
			h.mu.Unlock()
			start := time.Now()
			r.loadErr = r.load()
			if r.loadErr == nil {
				h.metrics().RoomLoaded(time.Since(start))
				h.log().Info("loaded room", zap.String("room", key), zap.String("path", r.log.Path()),
					zap.Int64("bytes", r.log.Size()), zap.Duration("took", time.Since(start)))
			}
			close(r.ready)
		} else {
			r.refs++
			if r.idleTimer != nil {
				r.idleTimer.Stop()
				r.idleTimer = nil
			}
			h.mu.Unlock()
			<-r.ready
		}
		if r.loadErr != nil {
			h.mu.Lock()
			r.refs--
			if h.rooms[key] == r {
				delete(h.rooms, key) // the next join tries again
			}
			h.mu.Unlock()
			return nil, r.loadErr
		}
		return r, nil
	}
}

// release drops a reference; the last one arms the idle unload timer.
func (h *Hub) release(r *room) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r.refs--
	if r.refs > 0 || h.closed {
		return
	}
	// The generation tells this timer from a later one: a timer stopped too
	// late (it already fired) finds a newer generation and does nothing.
	r.idleGen++
	gen := r.idleGen
	r.idleTimer = time.AfterFunc(h.options().IdleUnload, func() { h.unloadIdle(r, gen) })
}

func (h *Hub) unloadIdle(r *room, gen uint64) {
	h.mu.Lock()
	if r.refs > 0 || r.idleGen != gen || r.idleTimer == nil || h.closed || r.unloading {
		h.mu.Unlock()
		return
	}
	r.unloading = true
	r.idleTimer = nil
	h.mu.Unlock()

	r.unload()

	h.mu.Lock()
	if h.rooms[r.key] == r {
		delete(h.rooms, r.key)
	}
	close(r.unloaded)
	h.mu.Unlock()
}

// syncLoop flushes every room's file once per interval while the policy
// is fsync interval. It runs under every policy, since Reconfigure may
// change the policy.
func (h *Hub) syncLoop() {
	defer h.background.Done()
	t := time.NewTimer(h.options().Fsync.Interval)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
			if h.options().Fsync.Mode == FsyncInterval {
				for _, r := range h.loadedRooms() {
					r.syncLog()
				}
			}
			t.Reset(h.options().Fsync.Interval)
		}
	}
}

func (h *Hub) loadedRooms() []*room {
	h.mu.Lock()
	defer h.mu.Unlock()
	rooms := make([]*room, 0, len(h.rooms))
	for _, r := range h.rooms {
		select {
		case <-r.ready:
			if r.loadErr == nil && !r.unloading {
				rooms = append(rooms, r)
			}
		default:
		}
	}
	return rooms
}

// Close shuts the hub down: every connection is closed with 1001, then
// every room's file is compacted, fsynced and closed. It waits at most
// ShutdownTimeout for connections to end; the files are flushed either way.
func (h *Hub) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	for _, r := range h.rooms {
		if r.idleTimer != nil {
			r.idleTimer.Stop()
			r.idleTimer = nil
		}
	}
	h.mu.Unlock()

	rooms := h.loadedRooms()
	for _, r := range rooms {
		r.closeAll(websocket.StatusGoingAway, "server shutting down")
	}
	drained := make(chan struct{})
	go func() { h.serving.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(h.options().ShutdownTimeout):
		h.log().Warn("connections still open at shutdown timeout")
	}
	h.cancel()
	h.background.Wait()
	for _, r := range rooms {
		r.unload()
	}
	return nil
}

// truncateReason keeps a close reason within the 123 bytes a close frame
// allows, without cutting a UTF-8 sequence.
func truncateReason(s string) string {
	const max = 123
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut]
}

// roomUnavailableReason says why a room could not open without naming
// server paths: the log has the full error, the client gets its kind.
func roomUnavailableReason(err error) string {
	switch {
	case errors.Is(err, storage.ErrNotWireDB):
		return "room unavailable: its file is not a WireDB file"
	case errors.Is(err, storage.ErrUnknownVersion):
		return "room unavailable: its file has an unknown WireDB version"
	case errors.Is(err, storage.ErrCorrupt):
		return "room unavailable: its file has a corrupt record"
	case errors.Is(err, ErrHubClosed):
		return "server shutting down"
	default:
		return "room unavailable: storage error"
	}
}

// roomCount is the number of rooms in memory, loading or loaded.
func (h *Hub) roomCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.rooms)
}

// Options returns the hub's current options.
func (h *Hub) Options() Options { return *h.options() }
