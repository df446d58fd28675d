package webhook

import (
	"context"
	"fmt"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Results passed to Options.OnResult.
const (
	// ResultSent: the receiver answered 2xx.
	ResultSent = "sent"
	// ResultFailed: every attempt failed; the delivery was given up.
	ResultFailed = "failed"
	// ResultDropped: the webhook's queue was full; the event was not queued.
	ResultDropped = "dropped"
)

// closeWait bounds how long Close waits for the goroutines it stopped. They
// stop at once unless Options.StateVector hangs; then Close logs and returns.
const closeWait = time.Second

// Options configure a Dispatcher. Zero values mean the documented defaults.
type Options struct {
	// StateVector returns a room's Yjs state vector. It is called once per
	// debounce window that ends (shared by the webhooks with that Debounce),
	// from a timer goroutine, never from Changed: it may take the room's
	// lock. It may be called after the room was unloaded (its window was
	// still open). An error is logged and the event is sent with an empty
	// state_vector. Required when a webhook wants room.changed.
	StateVector func(room string) ([]byte, error)
	// Logger logs failed attempts (debug), given-up deliveries and full
	// queues (warn). Nil means none.
	Logger *zap.Logger
	// Client sends the POSTs. Nil means a client of its own that follows no
	// redirects and has no overall timeout (Config.Timeout bounds each
	// attempt); Close closes its idle connections.
	Client *http.Client
	// Clock is the time source. Nil means the real time.
	Clock Clock
	// QueueSize bounds the deliveries waiting per webhook (the one being
	// tried not counted). Beyond it new events are dropped (OnResult
	// "dropped", and a warning at most every 10s per webhook). Zero means
	// DefaultQueueSize (1000).
	QueueSize int
	// MaxAttempts is how many times a delivery is tried before it is given
	// up. The waits between attempts are 1s, 2s, 4s, ... capped at 30s.
	// Zero means DefaultMaxAttempts (5).
	MaxAttempts int
	// OnResult, if set, is told how each event ended for each webhook, for
	// metrics: url is Config.URL with any password redacted, result one of
	// ResultSent, ResultFailed, ResultDropped. It must return quickly and
	// must not block: "dropped" is reported from the goroutine that called
	// Loaded or Unloaded. A delivery abandoned by Close reports nothing.
	OnResult func(url, event, result string)
}

// withDefaults returns o with zero fields set to their defaults.
func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	if o.QueueSize == 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.OnResult == nil {
		o.OnResult = func(string, string, string) {}
	}
	return o
}

// Dispatcher queues and delivers the webhook events of one set of webhooks.
// All its methods are safe for concurrent use; Changed, Loaded and Unloaded
// never block.
type Dispatcher struct {
	opts       Options
	hooks      []*hook
	groups     []*debounceGroup // webhooks that want room.changed, by Debounce
	ownsClient bool

	// ctx is cancelled by Close: it stops the workers and their attempts.
	ctx    context.Context
	cancel context.CancelFunc
	// running counts the workers and the window flushes under way.
	running   sync.WaitGroup
	closeOnce sync.Once
	closed    atomic.Bool

	// mu guards every group's windows and, with closed, the start of a
	// flush (running.Add must not race Close's running.Wait).
	mu sync.Mutex
}

// debounceGroup holds the open debounce windows of the webhooks that want
// room.changed and share one Debounce: usually all of them, so one window
// per room and one StateVector call per window.
type debounceGroup struct {
	debounce time.Duration
	hooks    []*hook
	windows  map[string]*window // by room; guarded by Dispatcher.mu
}

// window is a room's open debounce window.
type window struct {
	updates int
	timer   Timer
}

// New checks cfgs and starts one worker per webhook. Close stops them.
func New(cfgs []Config, o Options) (*Dispatcher, error) {
	if o.QueueSize < 0 {
		return nil, fmt.Errorf("webhook queue size %d: must not be negative", o.QueueSize)
	}
	if o.MaxAttempts < 0 {
		return nil, fmt.Errorf("webhook max attempts %d: must not be negative", o.MaxAttempts)
	}
	o = o.withDefaults()
	d := &Dispatcher{opts: o}
	if d.opts.Client == nil {
		d.opts.Client = newClient()
		d.ownsClient = true
	}
	byDebounce := make(map[time.Duration]*debounceGroup)
	for i, cfg := range cfgs {
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("webhook %d: %w", i, err)
		}
		h, err := newHook(d, cfg.withDefaults())
		if err != nil {
			return nil, fmt.Errorf("webhook %d: %w", i, err)
		}
		d.hooks = append(d.hooks, h)
		if !h.cfg.wants(EventRoomChanged) {
			continue
		}
		if o.StateVector == nil {
			return nil, fmt.Errorf("webhook %d (%s): wants %s but Options.StateVector is nil", i, h.url, EventRoomChanged)
		}
		g := byDebounce[h.cfg.Debounce]
		if g == nil {
			g = &debounceGroup{debounce: h.cfg.Debounce, windows: make(map[string]*window)}
			byDebounce[h.cfg.Debounce] = g
			d.groups = append(d.groups, g)
		}
		g.hooks = append(g.hooks, h)
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	for _, h := range d.hooks {
		d.running.Add(1)
		go h.run(d.ctx)
	}
	return d, nil
}

// newClient returns the default client: a transport of its own, so that
// Close can close its idle connections, and no redirects, so that a 302 is
// not turned into a GET that "succeeds".
func newClient() *http.Client {
	return &http.Client{
		Transport: http.DefaultTransport.(*http.Transport).Clone(),
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Changed notes that room changed by n updates (n <= 0 is ignored). It is
// meant for the hot path, under the room's lock: it takes a short mutex,
// never blocks on I/O or on a receiver, and never calls back into the
// caller. The first change of a room opens a debounce window; when it ends,
// one room.changed event carrying the updates counted in the window and the
// room's state vector (Options.StateVector) is queued for each webhook that
// wants room.changed.
func (d *Dispatcher) Changed(room string, n int) {
	if n <= 0 || len(d.groups) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed.Load() {
		return
	}
	for _, g := range d.groups {
		w := g.windows[room]
		if w == nil {
			w = &window{}
			g.windows[room] = w
			// The window is in the map before the timer can fire; its
			// callback waits for d.mu anyway.
			w.timer = d.opts.Clock.AfterFunc(g.debounce, func() { d.endWindow(g, room) })
		}
		w.updates += n
	}
}

// Loaded queues a room.loaded event for each webhook that wants it. It never
// blocks.
func (d *Dispatcher) Loaded(room string) { d.lifecycle(EventRoomLoaded, room) }

// Unloaded queues a room.unloaded event for each webhook that wants it. It
// never blocks. A room.changed whose window is still open is sent when the
// window ends, after this event.
func (d *Dispatcher) Unloaded(room string) { d.lifecycle(EventRoomUnloaded, room) }

func (d *Dispatcher) lifecycle(event, room string) {
	if d.closed.Load() {
		return
	}
	var body []byte // encoded only if a webhook wants it
	for _, h := range d.hooks {
		if !h.cfg.wants(event) {
			continue
		}
		if body == nil {
			body = encodeLifecycle(event, room, d.opts.Clock.Now())
		}
		h.enqueue(delivery{event: event, room: room, body: body})
	}
}

// endWindow closes room's window in g and queues its room.changed event.
// It runs in a timer goroutine.
func (d *Dispatcher) endWindow(g *debounceGroup, room string) {
	d.mu.Lock()
	w := g.windows[room]
	if d.closed.Load() || w == nil {
		d.mu.Unlock()
		return
	}
	delete(g.windows, room)
	d.running.Add(1)
	d.mu.Unlock()
	defer d.running.Done()
	// StateVector is the caller's code, in our goroutine: a panic in it
	// must not take the process down.
	defer func() {
		if v := recover(); v != nil {
			d.opts.Logger.Error("panic while ending a webhook debounce window",
				zap.String("room", room), zap.Any("panic", v), zap.ByteString("stack", debug.Stack()))
		}
	}()
	sv, err := d.opts.StateVector(room)
	if err != nil {
		d.opts.Logger.Warn("reading a room's state vector for a webhook; sending the event without it",
			zap.String("room", room), zap.Error(err))
		sv = nil
	}
	if d.closed.Load() { // Close gave up waiting for StateVector
		return
	}
	body := encodeChanged(room, sv, w.updates, d.opts.Clock.Now())
	for _, h := range g.hooks {
		h.enqueue(delivery{event: EventRoomChanged, room: room, body: body})
	}
}

// Close stops the debounce timers and the workers, cancelling the attempts
// in flight; open windows and queued events are dropped without a result.
// It returns once they have stopped, or after about a second if
// Options.StateVector hangs (logged). Later calls do nothing, as do
// Changed, Loaded and Unloaded after it.
func (d *Dispatcher) Close() {
	d.closeOnce.Do(func() {
		d.mu.Lock()
		d.closed.Store(true)
		for _, g := range d.groups {
			for room, w := range g.windows {
				w.timer.Stop()
				delete(g.windows, room)
			}
		}
		d.mu.Unlock()
		d.cancel()

		stopped := make(chan struct{})
		go func() { // exits when the last worker or flush does
			d.running.Wait()
			close(stopped)
		}()
		wait := time.NewTimer(closeWait)
		defer wait.Stop()
		select {
		case <-stopped:
		case <-wait.C:
			d.opts.Logger.Warn("webhook dispatcher closed while a state vector was still being read",
				zap.Duration("waited", closeWait))
		}
		if d.ownsClient {
			d.opts.Client.CloseIdleConnections()
		}
	})
}
