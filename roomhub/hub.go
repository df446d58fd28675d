package roomhub

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-wiredb/wiredb/storage"
)

// Hub owns the rooms of one data directory. It is safe for concurrent use.
type Hub struct {
	store storage.LogStore
	opts  atomic.Pointer[Options] // replaced whole by Reconfigure

	ctx    context.Context // cancelled by Close: ends the fsync loop
	cancel context.CancelFunc

	mu     sync.Mutex
	rooms  map[string]*room
	closed bool

	serving sync.WaitGroup // one per served socket (StartWith)
	// sockets are the served sockets, guarded by mu: Close closes those
	// no room knows of (waiting for their first message, or a Hocuspocus
	// socket with no document open).
	sockets    map[Transport]struct{}
	background sync.WaitGroup // the fsync loop, and the awareness loop in cluster mode

	connIDs atomic.Uint64

	// Observers (backend.go): replaced whole under observersMu, read
	// without a lock.
	observersMu sync.Mutex
	observers   atomic.Pointer[[]Observer]

	// Cluster mode (cluster.go): set by SetCluster before use.
	cluster  Cluster
	instance string
	// detached are rooms that broke (shared.go) and left h.rooms while
	// connections still held them.
	detached map[*room]struct{}
}

// New returns a Hub storing rooms' logs in store.
func New(store storage.LogStore, opts Options) *Hub {
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
		if r != nil && !r.unloading && r.isBroken() {
			// A fresh load replaces it; it unloads once its last
			// connection is gone.
			delete(h.rooms, key)
			if h.detached == nil {
				h.detached = make(map[*room]struct{})
			}
			h.detached[r] = struct{}{}
			r = nil
		}
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
				for _, o := range h.observerList() {
					o.Loaded(key)
				}
				h.log().Info("loaded room", zap.String("room", key), zap.String("path", r.where()),
					zap.Int64("bytes", r.storedBytes()), zap.Duration("took", time.Since(start)))
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
	idle := h.options().IdleUnload
	if r.isBroken() {
		idle = 0 // a fresh load serves its key already
	}
	r.idleTimer = time.AfterFunc(idle, func() { h.unloadIdle(r, gen) })
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
	delete(h.detached, r)
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
	var detached []*room
	for r := range h.detached {
		if r.idleTimer != nil {
			r.idleTimer.Stop()
			r.idleTimer = nil
		}
		if !r.unloading {
			detached = append(detached, r)
		}
	}
	sockets := make([]Transport, 0, len(h.sockets))
	for t := range h.sockets {
		sockets = append(sockets, t)
	}
	h.mu.Unlock()

	rooms := append(h.loadedRooms(), detached...)
	for _, r := range rooms {
		r.closeAll(StatusGoingAway, "server shutting down")
	}
	for _, t := range sockets {
		// A no-op for those a room closed above. Close waits for the
		// handshake: one goroutine each, as conn.close does.
		go t.Close(StatusGoingAway, "server shutting down")
	}
	drained := make(chan struct{})
	go func() { h.serving.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(h.options().ShutdownTimeout):
		h.log().Warn("connections still open at shutdown timeout")
		// Their readers end once their sockets do.
		for _, r := range rooms {
			r.cutAll()
		}
		for _, t := range sockets {
			t.CloseNow()
		}
	}
	h.cancel()
	h.background.Wait()
	for _, r := range rooms {
		r.unload()
	}
	return nil
}

// Options returns the hub's current options.
func (h *Hub) Options() Options { return *h.options() }
