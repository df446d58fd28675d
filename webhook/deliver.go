package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime/debug"
	"sync"
	"time"

	"go.uber.org/zap"
)

const (
	// firstBackoff is the wait after the first failed attempt; it doubles
	// after each further one, up to maxBackoff.
	firstBackoff = time.Second
	maxBackoff   = 30 * time.Second
	// dropLogEvery bounds the "queue full" warnings of one webhook.
	dropLogEvery = 10 * time.Second
	// maxDrain bounds the response body read so that the connection can be
	// reused; a larger body costs the connection, not the attempt.
	maxDrain = 64 << 10
)

// delivery is one event for one webhook. body is shared by the webhooks the
// event went to, and never changed.
type delivery struct {
	event string
	room  string
	body  []byte
}

// hook is one webhook: its queue and the state of its one worker.
type hook struct {
	d     *Dispatcher
	cfg   Config // with defaults
	url   string // cfg.URL with any password redacted, for logs and OnResult
	queue chan delivery

	dropMu          sync.Mutex
	droppedSinceLog int
	lastDropLog     time.Time // zero: never logged
}

func newHook(d *Dispatcher, cfg Config) (*hook, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil { // Validate parsed it already
		return nil, fmt.Errorf("webhook url: %w", err)
	}
	return &hook{d: d, cfg: cfg, url: u.Redacted(), queue: make(chan delivery, d.opts.QueueSize)}, nil
}

// enqueue queues dl, or drops it if the queue is full. It never blocks.
func (h *hook) enqueue(dl delivery) {
	select {
	case h.queue <- dl:
		return
	default:
	}
	h.d.opts.OnResult(h.url, dl.event, ResultDropped)
	h.dropMu.Lock()
	defer h.dropMu.Unlock()
	h.droppedSinceLog++
	now := h.d.opts.Clock.Now()
	if !h.lastDropLog.IsZero() && now.Sub(h.lastDropLog) < dropLogEvery {
		return
	}
	h.d.opts.Logger.Warn("webhook queue full; dropping events",
		zap.String("url", h.url), zap.Int("queue_size", cap(h.queue)),
		zap.Int("dropped", h.droppedSinceLog), zap.String("event", dl.event), zap.String("room", dl.room))
	h.droppedSinceLog = 0
	h.lastDropLog = now
}

// run is the webhook's worker: it delivers the queued events one at a time
// until ctx is cancelled (Close).
func (h *hook) run(ctx context.Context) {
	defer h.d.running.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case dl := <-h.queue:
			if ctx.Err() != nil { // select picks at random when both are ready
				return
			}
			h.deliverSafely(ctx, dl)
		}
	}
}

// deliverSafely delivers dl; a panic (in OnResult, say) is logged, and the
// worker goes on with the next event rather than leave the queue to fill.
func (h *hook) deliverSafely(ctx context.Context, dl delivery) {
	defer func() {
		if v := recover(); v != nil {
			h.d.opts.Logger.Error("panic while delivering a webhook event",
				zap.String("url", h.url), zap.String("event", dl.event), zap.String("room", dl.room),
				zap.Any("panic", v), zap.ByteString("stack", debug.Stack()))
		}
	}()
	h.deliver(ctx, dl)
}

// deliver tries dl up to MaxAttempts times, waiting backoff(n) after the
// n-th failed attempt, and reports the result. It returns early, reporting
// nothing, when ctx is cancelled.
func (h *hook) deliver(ctx context.Context, dl delivery) {
	signature := Sign(h.cfg.Secret, dl.body)
	maxAttempts := h.d.opts.MaxAttempts
	for attempt := 1; ; attempt++ {
		err := h.attempt(ctx, dl, signature)
		if err == nil {
			h.d.opts.OnResult(h.url, dl.event, ResultSent)
			return
		}
		if ctx.Err() != nil {
			return
		}
		if attempt >= maxAttempts {
			h.d.opts.Logger.Warn("webhook delivery failed; giving up",
				zap.String("url", h.url), zap.String("event", dl.event), zap.String("room", dl.room),
				zap.Int("attempts", attempt), zap.Error(err))
			h.d.opts.OnResult(h.url, dl.event, ResultFailed)
			return
		}
		wait := backoff(attempt)
		h.d.opts.Logger.Debug("webhook delivery attempt failed; retrying",
			zap.String("url", h.url), zap.String("event", dl.event), zap.String("room", dl.room),
			zap.Int("attempt", attempt), zap.Duration("retry_in", wait), zap.Error(err))
		if !h.sleep(ctx, wait) {
			return
		}
	}
}

// backoff is the wait after the n-th failed attempt (n >= 1): 1s, 2s, 4s,
// ... capped at 30s.
func backoff(n int) time.Duration {
	if n > 6 { // past the cap already; and a large shift would overflow
		return maxBackoff
	}
	return min(firstBackoff<<(n-1), maxBackoff)
}

// sleep waits d on the Clock; false if ctx was cancelled first.
func (h *hook) sleep(ctx context.Context, d time.Duration) bool {
	done := make(chan struct{})
	t := h.d.opts.Clock.AfterFunc(d, func() { close(done) })
	select {
	case <-done:
		return true
	case <-ctx.Done():
		t.Stop()
		return false
	}
}

// errAttemptTimeout is the cause of an attempt cancelled by Config.Timeout.
var errAttemptTimeout = errors.New("webhook: attempt timed out")

// errStatus is a non-2xx answer.
type errStatus struct{ code int }

func (e errStatus) Error() string { return fmt.Sprintf("webhook: receiver answered %d", e.code) }

// attempt POSTs dl once, bounded by Config.Timeout on the Clock; nil if the
// receiver answered 2xx.
func (h *hook) attempt(ctx context.Context, dl delivery, signature string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timeout := h.d.opts.Clock.AfterFunc(h.cfg.Timeout, func() { cancel(errAttemptTimeout) })
	defer timeout.Stop()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.cfg.URL, bytes.NewReader(dl.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set(headerEvent, dl.event)
	req.Header.Set(headerSignature, signature)
	resp, err := h.d.opts.Client.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errAttemptTimeout) {
			return fmt.Errorf("%w after %v", cause, h.cfg.Timeout)
		}
		return err
	}
	// Read errors are ignored: a 2xx is delivered even if its body was cut
	// short, as the receiver has said it took the event.
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return errStatus{resp.StatusCode}
	}
	return nil
}
