package webhook

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	for i, w := range want {
		if got := backoff(i + 1); got != w {
			t.Errorf("backoff(%d) = %v, want %v", i+1, got, w)
		}
	}
	for _, n := range []int{40, 64, 65, math.MaxInt} {
		if got := backoff(n); got != maxBackoff {
			t.Errorf("backoff(%d) = %v, want the cap %v", n, got, maxBackoff)
		}
	}
}

// attemptTimes returns when each request arrived, relative to the first.
func attemptTimes(got []request) []time.Duration {
	var ds []time.Duration
	for _, r := range got {
		ds = append(ds, r.at.Sub(got[0].at))
	}
	return ds
}

// A receiver that answers 500 twice, then 200: delivered on the third
// attempt, after waiting 1s and 2s; the same signed body every time.
func TestRetryUntilDelivered(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	rc := newReceiver(t, clock, func(n int, _ *http.Request) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	var res results
	d := newDispatcher(t, []Config{{URL: rc.URL, Secret: "s", Events: []string{EventRoomLoaded}}},
		Options{Clock: clock, OnResult: res.onResult})
	d.Loaded("a")
	rc.wait(t, 1)
	clock.waitTimer(t, time.Second)
	clock.Advance(time.Second)
	rc.wait(t, 2)
	clock.waitTimer(t, 2*time.Second)
	clock.Advance(2 * time.Second)
	got := rc.wait(t, 3)
	waitUntil(t, "the sent result", func() bool { return res.count("room.loaded sent") == 1 })

	if want := []time.Duration{0, time.Second, 3 * time.Second}; !slices.Equal(attemptTimes(got), want) {
		t.Errorf("attempts at %v, want %v", attemptTimes(got), want)
	}
	for i, r := range got[1:] {
		if !bytes.Equal(r.body, got[0].body) || r.header.Get("X-WireDB-Signature") != got[0].header.Get("X-WireDB-Signature") {
			t.Errorf("attempt %d sent another body or signature than the first", i+2)
		}
	}
	if n := res.count("room.loaded failed"); n != 0 {
		t.Errorf("%d failed results for a delivered event", n)
	}
}

// A receiver that always fails: MaxAttempts attempts spaced 1s, 2s, 4s, ...
// capped at 30s, then given up with OnResult "failed" and a warning.
func TestRetryGivesUp(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	rc := newReceiver(t, clock, func(int, *http.Request) int { return http.StatusServiceUnavailable })
	var res results
	core, logs := observer.New(zapcore.WarnLevel)
	const maxAttempts = 8
	d := newDispatcher(t, []Config{{URL: rc.URL, Secret: "s", Events: []string{EventRoomLoaded}}},
		Options{Clock: clock, OnResult: res.onResult, MaxAttempts: maxAttempts, Logger: zap.New(core)})
	d.Loaded("a")
	for n := 1; n < maxAttempts; n++ {
		rc.wait(t, n)
		clock.waitTimer(t, backoff(n))
		clock.Advance(backoff(n))
	}
	waitUntil(t, "the failed result", func() bool { return res.count("room.loaded failed") == 1 })
	got := rc.requests()
	want := []time.Duration{0, 1 * time.Second, 3 * time.Second, 7 * time.Second, 15 * time.Second,
		31 * time.Second, 61 * time.Second, 91 * time.Second}
	if !slices.Equal(attemptTimes(got), want) {
		t.Errorf("attempts at %v, want %v", attemptTimes(got), want)
	}
	if p := clock.pending(); len(p) != 0 {
		t.Errorf("timers pending after giving up: %v", p)
	}
	if n := logs.FilterMessage("webhook delivery failed; giving up").Len(); n != 1 {
		t.Errorf("%d give-up warnings, want 1", n)
	}
}

// An attempt that outlasts Config.Timeout (on the Clock) is cancelled and
// retried.
func TestAttemptTimeout(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	var rc *receiver
	rc = newReceiver(t, clock, func(n int, r *http.Request) int {
		if n == 1 {
			return rc.hang(n, r)
		}
		return http.StatusOK
	})
	var res results
	d := newDispatcher(t, []Config{{URL: rc.URL, Secret: "s", Timeout: 3 * time.Second, Events: []string{EventRoomLoaded}}},
		Options{Clock: clock, OnResult: res.onResult})
	d.Loaded("a")
	rc.wait(t, 1)
	clock.waitTimer(t, 3*time.Second)
	clock.Advance(3 * time.Second)
	clock.waitTimer(t, time.Second)
	clock.Advance(time.Second)
	rc.wait(t, 2)
	waitUntil(t, "the sent result", func() bool { return res.count("room.loaded sent") == 1 })
}

// A redirect is a failed attempt, not a GET of the new location.
func TestRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	target := newReceiver(t, clock, nil)
	var redirects atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirects.Add(1)
		http.Redirect(w, r, target.URL, http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	var res results
	d := newDispatcher(t, []Config{{URL: srv.URL, Secret: "s", Events: []string{EventRoomLoaded}}},
		Options{Clock: clock, OnResult: res.onResult, MaxAttempts: 1})
	d.Loaded("a")
	waitUntil(t, "the failed result", func() bool { return res.count("room.loaded failed") == 1 })
	if n := redirects.Load(); n != 1 {
		t.Errorf("webhook got %d requests, want 1", n)
	}
	if got := target.requests(); len(got) != 0 {
		t.Errorf("the redirect was followed: its target got %d requests", len(got))
	}
}

// A receiver that hangs: its queue fills up to QueueSize and further events
// are dropped, counted and logged, while Changed and Loaded go on without
// blocking, and the windows still close.
func TestBoundedQueue(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	var rc *receiver
	rc = newReceiver(t, clock, func(n int, r *http.Request) int { return rc.hang(n, r) })
	var res results
	core, logs := observer.New(zapcore.WarnLevel)
	const queueSize = 4
	d := newDispatcher(t, []Config{{URL: rc.URL, Secret: "s", Events: []string{EventRoomChanged, EventRoomLoaded}}},
		Options{Clock: clock, OnResult: res.onResult, QueueSize: queueSize, Logger: zap.New(core),
			StateVector: fixedStateVector([]byte{1})})

	// The worker takes the first event and hangs on it.
	d.Changed("first", 1)
	clock.Advance(DefaultDebounce)
	rc.wait(t, 1)

	const rooms = 100
	for i := range rooms {
		d.Changed(fmt.Sprintf("room-%d", i), 1)
	}
	clock.Advance(DefaultDebounce)
	waitUntil(t, "the windows to end", func() bool { return res.count("room.changed dropped") == rooms-queueSize })
	if n, c := d.queueLen(0); n != queueSize || c != queueSize {
		t.Fatalf("queue holds %d of %d, want it full at QueueSize %d", n, c, queueSize)
	}
	if n := logs.FilterMessage("webhook queue full; dropping events").Len(); n != 1 {
		t.Errorf("%d queue-full warnings within 10s, want 1", n)
	}

	// Loaded drops at once, in the caller's goroutine.
	d.Loaded("x")
	if n := res.count("room.loaded dropped"); n != 1 {
		t.Fatalf("room.loaded dropped %d times, want 1", n)
	}

	// A million Changed calls over many rooms while the worker is stuck:
	// they must not wait for it. The bound is generous; what it catches is
	// a Changed that blocks (it would never finish).
	const calls, manyRooms = 1_000_000, 1000
	roomNames := make([]string, manyRooms)
	for i := range roomNames {
		roomNames[i] = fmt.Sprintf("busy-%d", i)
	}
	done := make(chan time.Duration)
	go func() {
		start := time.Now()
		for i := range calls {
			d.Changed(roomNames[i%manyRooms], 1)
		}
		done <- time.Since(start)
	}()
	select {
	case took := <-done:
		t.Logf("%d Changed calls took %v", calls, took)
	case <-time.After(waitBound):
		t.Fatalf("%d Changed calls did not finish within %v with the worker stuck", calls, waitBound)
	}
	if got := d.openWindows(); got != manyRooms {
		t.Fatalf("open windows = %d, want one per room (%d)", got, manyRooms)
	}
	clock.Advance(DefaultDebounce)
	waitUntil(t, "the busy windows to end", func() bool {
		return res.count("room.changed dropped") == rooms-queueSize+manyRooms
	})
	if n, _ := d.queueLen(0); n != queueSize {
		t.Errorf("queue holds %d, want %d", n, queueSize)
	}
	if got := d.openWindows(); got != 0 {
		t.Errorf("open windows = %d after they ended", got)
	}
	if got := len(rc.requests()); got != 1 {
		t.Errorf("receiver got %d requests while hung on the first, want 1", got)
	}
}

// The caller holds a room's lock around Changed, and StateVector takes that
// lock: a window ending meanwhile must not hold what Changed needs.
func TestChangedUnderRoomLock(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	rc := newReceiver(t, clock, nil)
	var roomMu sync.Mutex
	entered := make(chan struct{}, 1)
	d := newDispatcher(t, []Config{{URL: rc.URL, Secret: "s"}}, Options{Clock: clock,
		StateVector: func(string) ([]byte, error) {
			entered <- struct{}{}
			roomMu.Lock()
			defer roomMu.Unlock()
			return []byte{5}, nil
		}})
	roomMu.Lock()
	unlock := sync.OnceFunc(roomMu.Unlock)
	defer unlock() // on failure too, or Close in the cleanup would hang
	d.Changed("a", 1)
	clock.Advance(DefaultDebounce)
	<-entered // the window's end now waits for roomMu
	done := make(chan struct{})
	go func() {
		d.Changed("a", 1)
		d.Loaded("a")
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(waitBound):
		t.Fatal("Changed blocked while a window's end waited for the room lock")
	}
	unlock()
	if c := decodeChanged(t, rc.wait(t, 1)[0].body); c.Updates != 1 {
		t.Errorf("first event = %+v, want 1 update (the second change opens a new window)", c)
	}
	if got := d.openWindows(); got != 1 {
		t.Errorf("open windows = %d, want the one opened by the second change", got)
	}
}

// A panic in OnResult is logged; the worker goes on with the next event.
func TestWorkerSurvivesPanic(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	rc := newReceiver(t, clock, nil)
	var once sync.Once
	var res results
	d := newDispatcher(t, []Config{{URL: rc.URL, Secret: "s", Events: []string{EventRoomLoaded}}},
		Options{Clock: clock, OnResult: func(url, event, result string) {
			once.Do(func() { panic("metrics broke") })
			res.onResult(url, event, result)
		}})
	d.Loaded("a")
	d.Loaded("b")
	rc.wait(t, 2)
	waitUntil(t, "the second result", func() bool { return res.count("room.loaded sent") == 1 })
}
