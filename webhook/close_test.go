package webhook

import (
	"fmt"
	"net/http"
	"runtime"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// Close with a hung receiver, open windows and a full queue, on the real
// clock: it returns promptly, reports nothing for what it abandoned, and
// leaves no goroutine behind. Not parallel: it counts goroutines (parallel
// tests only start once the sequential ones are done).
func TestCloseLeavesNothing(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("session", func(t *testing.T) {
		var rc *receiver
		rc = newReceiver(t, realClock{}, func(n int, r *http.Request) int { return rc.hang(n, r) })
		var res results
		d := newDispatcher(t, []Config{
			{URL: rc.URL, Secret: "s", Events: []string{EventRoomChanged, EventRoomLoaded}},
			{URL: rc.URL, Secret: "t", Debounce: time.Hour},
		}, Options{OnResult: res.onResult, QueueSize: 3, StateVector: fixedStateVector(nil)})
		d.Loaded("room-0")
		rc.wait(t, 1) // the first worker hangs in this attempt (5s timeout)
		d.Changed("room-0", 1)
		for i := 1; i < 10; i++ {
			d.Loaded(fmt.Sprintf("room-%d", i))
			d.Changed(fmt.Sprintf("room-%d", i), 1)
		}
		if got := d.openWindows(); got != 20 {
			t.Fatalf("open windows = %d, want 20", got)
		}

		start := time.Now()
		d.Close()
		if took := time.Since(start); took > closeWait {
			t.Errorf("Close took %v with a hung receiver, want under %v", took, closeWait)
		}
		d.Close() // idempotent
		if got := d.openWindows(); got != 0 {
			t.Errorf("open windows after Close = %d", got)
		}
		d.Changed("late", 1)
		d.Loaded("late")
		if got := d.openWindows(); got != 0 {
			t.Errorf("Changed after Close opened a window")
		}
		if n := res.count("room.loaded sent") + res.count("room.loaded failed"); n != 0 {
			t.Errorf("%d results reported for deliveries abandoned by Close", n)
		}
		if n := res.count("room.loaded dropped"); n != 10-1-3 {
			t.Errorf("room.loaded dropped %d times, want %d (10, less one in flight and 3 queued)", n, 10-1-3)
		}
	})
	// The session's cleanups have closed the dispatcher and the server.
	deadline := time.Now().Add(waitBound)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Close, %d before; still running:\n%s",
				runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}

// A StateVector that hangs holds Close for about a second only; it is
// logged, and the window's goroutine ends once StateVector returns.
func TestCloseWithHungStateVector(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	rc := newReceiver(t, clock, nil)
	entered, release := make(chan struct{}), make(chan struct{})
	core, logs := observer.New(zapcore.WarnLevel)
	d := newDispatcher(t, []Config{{URL: rc.URL, Secret: "s"}}, Options{Clock: clock, Logger: zap.New(core),
		StateVector: func(string) ([]byte, error) {
			close(entered)
			<-release
			return nil, nil
		}})
	d.Changed("a", 1)
	clock.Advance(DefaultDebounce)
	<-entered
	start := time.Now()
	d.Close()
	took := time.Since(start)
	close(release)
	if took < closeWait || took > closeWait+waitBound {
		t.Errorf("Close took %v, want about %v", took, closeWait)
	}
	if n := logs.FilterMessage("webhook dispatcher closed while a state vector was still being read").Len(); n != 1 {
		t.Errorf("%d warnings about the hung state vector, want 1", n)
	}
	ended := make(chan struct{})
	go func() {
		d.running.Wait()
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(waitBound):
		t.Fatal("the window's goroutine did not end once StateVector returned")
	}
	if n, _ := d.queueLen(0); n != 0 {
		t.Errorf("the window's event was queued after Close")
	}
}
