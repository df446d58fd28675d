package webhook

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// waitBound bounds every wait of these tests: a condition not met by then is
// a failure, not a slow machine.
const waitBound = 10 * time.Second

// waitUntil polls cond until it holds, failing the test after waitBound.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitBound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", waitBound, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// request is one POST a receiver got.
type request struct {
	method string
	header http.Header
	body   []byte
	at     time.Time // on the receiver's clock
}

// receiver is an httptest server on the loopback interface that records
// every request and answers with respond (n counts requests from 1).
type receiver struct {
	URL     string
	clock   Clock
	respond func(n int, r *http.Request) int
	// release is closed at the end of the test, unblocking hung handlers
	// so that the server can close.
	release chan struct{}

	mu  sync.Mutex
	got []request
}

func newReceiver(t *testing.T, clock Clock, respond func(n int, r *http.Request) int) *receiver {
	t.Helper()
	if respond == nil {
		respond = func(int, *http.Request) int { return http.StatusNoContent }
	}
	rc := &receiver{clock: clock, respond: respond, release: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(rc.serveHTTP))
	rc.URL = srv.URL + "/hook"
	// Cleanups run last first: release the handlers, then close the server.
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(rc.release) })
	return rc
}

func (rc *receiver) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	rc.got = append(rc.got, request{method: r.Method, header: r.Header.Clone(), body: body, at: rc.clock.Now()})
	n := len(rc.got)
	rc.mu.Unlock()
	w.WriteHeader(rc.respond(n, r))
}

// hang is a respond function that answers only once the request is
// cancelled or the test ends.
func (rc *receiver) hang(_ int, r *http.Request) int {
	select {
	case <-r.Context().Done():
	case <-rc.release:
	}
	return http.StatusOK
}

// requests returns what the receiver got so far.
func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

// wait waits until the receiver has got n requests and returns them all.
func (rc *receiver) wait(t *testing.T, n int) []request {
	t.Helper()
	var got []request
	waitUntil(t, "the receiver to get requests", func() bool {
		got = rc.requests()
		return len(got) >= n
	})
	return got
}

// results records OnResult calls.
type results struct {
	mu  sync.Mutex
	got []string // "event result"
}

func (r *results) onResult(_, event, result string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, event+" "+result)
}

func (r *results) count(what string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, g := range r.got {
		if g == what {
			n++
		}
	}
	return n
}

// newDispatcher starts a Dispatcher that is closed at the end of the test,
// before the receivers (registered earlier) close.
func newDispatcher(t *testing.T, cfgs []Config, o Options) *Dispatcher {
	t.Helper()
	if o.Logger == nil {
		o.Logger = zaptest.NewLogger(t)
	}
	d, err := New(cfgs, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(d.Close)
	return d
}

// fixedStateVector returns sv for every room.
func fixedStateVector(sv []byte) func(string) ([]byte, error) {
	return func(string) ([]byte, error) { return sv, nil }
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
