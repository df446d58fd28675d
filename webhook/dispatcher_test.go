package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// changed decodes a room.changed body the way a receiver would.
type changed struct {
	Event       string `json:"event"`
	Room        string `json:"room"`
	StateVector string `json:"state_vector"`
	Updates     int    `json:"updates"`
	Time        string `json:"time"`
}

func decodeChanged(t *testing.T, body []byte) changed {
	t.Helper()
	var c changed
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	return c
}

func TestDebounce(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	rc := newReceiver(t, clock, nil)
	var svCalls atomic.Int32
	d := newDispatcher(t, []Config{{URL: rc.URL, Secret: "s"}}, Options{
		Clock: clock,
		StateVector: func(string) ([]byte, error) {
			svCalls.Add(1)
			return []byte{1}, nil
		},
	})

	// The window opens with the first change and is not extended by later
	// ones: 10 updates within it make one event when it ends.
	d.Changed("a", 1)
	clock.Advance(time.Second)
	for range 9 {
		d.Changed("a", 1)
	}
	if got := d.openWindows(); got != 1 {
		t.Fatalf("open windows = %d, want 1", got)
	}
	clock.Advance(time.Second - time.Millisecond)
	if got := d.openWindows(); got != 1 {
		t.Fatalf("window closed %v early", time.Millisecond)
	}
	clock.Advance(time.Millisecond)
	got := rc.wait(t, 1)
	first := decodeChanged(t, got[0].body)
	if first.Updates != 10 || first.Room != "a" {
		t.Fatalf("first event = %+v, want 10 updates of room a", first)
	}
	if want := fakeEpoch.Add(DefaultDebounce); got[0].at != want || first.Time != "2030-01-02T03:04:07.000Z" {
		t.Errorf("first event sent at %v with time %s, want at the window's end %v", got[0].at, first.Time, want)
	}

	// Changes after the window make a second event. Had the first window
	// made two, the extra one would have come before (one worker, FIFO).
	for range 3 {
		d.Changed("a", 1)
	}
	clock.Advance(DefaultDebounce)
	got = rc.wait(t, 2)
	if second := decodeChanged(t, got[1].body); second.Updates != 3 {
		t.Fatalf("second event = %+v, want 3 updates", second)
	}
	if n := svCalls.Load(); n != 2 {
		t.Errorf("StateVector called %d times, want once per window (2)", n)
	}
	if got := d.openWindows(); got != 0 {
		t.Errorf("open windows after both ended = %d", got)
	}
}

func TestDebounceRoomsApart(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	rc := newReceiver(t, clock, nil)
	d := newDispatcher(t, []Config{{URL: rc.URL, Secret: "s"}}, Options{
		Clock:       clock,
		StateVector: func(room string) ([]byte, error) { return []byte(room), nil },
	})
	d.Changed("a", 2)
	d.Changed("b", 1)
	d.Changed("b", 2)
	clock.Advance(DefaultDebounce)
	got := rc.wait(t, 2)
	byRoom := map[string]int{}
	for _, r := range got {
		c := decodeChanged(t, r.body)
		byRoom[c.Room] = c.Updates
		if want := []byte(c.Room); c.StateVector != base64Std(want) {
			t.Errorf("room %s: state_vector %s, want its own (%s)", c.Room, c.StateVector, base64Std(want))
		}
	}
	if want := map[string]int{"a": 2, "b": 3}; !maps.Equal(byRoom, want) {
		t.Fatalf("updates by room = %v, want %v", byRoom, want)
	}
}

// Webhooks with the same Debounce share a room's window (one StateVector
// call); one with another Debounce has windows of its own.
func TestDebounceShared(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	rc1 := newReceiver(t, clock, nil)
	rc2 := newReceiver(t, clock, nil)
	rc3 := newReceiver(t, clock, nil)
	var svCalls atomic.Int32
	d := newDispatcher(t, []Config{
		{URL: rc1.URL, Secret: "s1"},
		{URL: rc2.URL, Secret: "s2", Debounce: DefaultDebounce},
		{URL: rc3.URL, Secret: "s3", Debounce: 5 * time.Second},
	}, Options{Clock: clock, StateVector: func(string) ([]byte, error) {
		svCalls.Add(1)
		return nil, nil
	}})
	d.Changed("a", 4)
	if got := d.openWindows(); got != 2 {
		t.Fatalf("open windows = %d, want 2 (one per distinct debounce)", got)
	}
	clock.Advance(DefaultDebounce)
	for _, rc := range []*receiver{rc1, rc2} {
		if c := decodeChanged(t, rc.wait(t, 1)[0].body); c.Updates != 4 {
			t.Errorf("event = %+v, want 4 updates", c)
		}
	}
	if n := svCalls.Load(); n != 1 {
		t.Errorf("StateVector called %d times for the shared window, want 1", n)
	}
	if got := len(rc3.requests()); got != 0 {
		t.Fatalf("the 5s webhook got %d events after 2s", got)
	}
	clock.Advance(3 * time.Second)
	if c := decodeChanged(t, rc3.wait(t, 1)[0].body); c.Updates != 4 {
		t.Errorf("5s webhook event = %+v, want 4 updates", c)
	}
}

// The receiver's view: method, headers, a signature it can verify with the
// secret, and the body exactly as documented.
func TestRequestShape(t *testing.T) {
	t.Parallel()
	const secret = "whsec-test"
	clock := newFakeClock()
	rc := newReceiver(t, clock, nil)
	d := newDispatcher(t, []Config{{URL: rc.URL, Secret: secret, Debounce: time.Second,
		Events: []string{EventRoomChanged, EventRoomLoaded, EventRoomUnloaded}}},
		Options{Clock: clock, StateVector: fixedStateVector([]byte{1, 2, 3})})

	d.Loaded("notes/1")
	d.Changed("notes/1", 3)
	d.Unloaded("notes/1")
	clock.Advance(time.Second)
	got := rc.wait(t, 3)
	want := []struct{ event, body string }{
		{EventRoomLoaded, `{"event":"room.loaded","room":"notes/1","time":"2030-01-02T03:04:05.000Z"}`},
		{EventRoomUnloaded, `{"event":"room.unloaded","room":"notes/1","time":"2030-01-02T03:04:05.000Z"}`},
		{EventRoomChanged, `{"event":"room.changed","room":"notes/1","state_vector":"AQID","updates":3,"time":"2030-01-02T03:04:06.000Z"}`},
	}
	for i, r := range got {
		if r.method != http.MethodPost {
			t.Errorf("request %d: method %s", i, r.method)
		}
		if string(r.body) != want[i].body {
			t.Errorf("request %d body\n got %s\nwant %s", i, r.body, want[i].body)
		}
		for name, value := range map[string]string{
			"Content-Type":   "application/json",
			"X-WireDB-Event": want[i].event,
			"User-Agent":     "wiredb-webhook",
		} {
			if got := r.header.Get(name); got != value {
				t.Errorf("request %d: %s = %q, want %q", i, name, got, value)
			}
		}
		// Verified as a receiver would, not with Sign.
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(r.body)
		wantSig := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		if !hmac.Equal([]byte(r.header.Get("X-WireDB-Signature")), []byte(wantSig)) {
			t.Errorf("request %d: signature %q does not verify (want %q)", i, r.header.Get("X-WireDB-Signature"), wantSig)
		}
	}
}

// room.loaded and room.unloaded go only to the webhooks that list them;
// room.changed only to those that list it (or list nothing).
func TestEventSubscriptions(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	onlyChanged := newReceiver(t, clock, nil)
	all := newReceiver(t, clock, nil)
	onlyLoaded := newReceiver(t, clock, nil)
	d := newDispatcher(t, []Config{
		{URL: onlyChanged.URL, Secret: "s"},
		{URL: all.URL, Secret: "s", Events: []string{EventRoomUnloaded, EventRoomLoaded, EventRoomChanged}},
		{URL: onlyLoaded.URL, Secret: "s", Events: []string{EventRoomLoaded}},
	}, Options{Clock: clock, StateVector: fixedStateVector(nil)})

	d.Loaded("x")
	d.Unloaded("x")
	d.Changed("x", 1)
	clock.Advance(DefaultDebounce)
	events := func(rc *receiver, n int) []string {
		var evs []string
		for _, r := range rc.wait(t, n) {
			evs = append(evs, r.header.Get("X-WireDB-Event"))
		}
		return evs
	}
	// One worker per webhook sends in queue order. So an event wrongly
	// queued for a webhook shows up before the last one it expects, and
	// waiting for that one is enough to see it: room.loaded and unloaded
	// were queued before the window ended, and "last" is queued after
	// (once the window's event has reached a receiver).
	if got, want := events(all, 3), []string{EventRoomLoaded, EventRoomUnloaded, EventRoomChanged}; !slices.Equal(got, want) {
		t.Errorf("webhook with every event got %v, want %v", got, want)
	}
	d.Loaded("last")
	if got, want := events(onlyChanged, 1), []string{EventRoomChanged}; !slices.Equal(got, want) {
		t.Errorf("default webhook got %v, want %v", got, want)
	}
	if got, want := events(onlyLoaded, 2), []string{EventRoomLoaded, EventRoomLoaded}; !slices.Equal(got, want) {
		t.Errorf("room.loaded webhook got %v, want %v", got, want)
	}
	if got, want := events(all, 4)[3], EventRoomLoaded; got != want {
		t.Errorf("webhook with every event got %s last, want %s", got, want)
	}
}

// A state vector that cannot be read is logged; the event still goes, with
// an empty state_vector.
func TestStateVectorError(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	rc := newReceiver(t, clock, nil)
	d := newDispatcher(t, []Config{{URL: rc.URL, Secret: "s"}}, Options{Clock: clock,
		StateVector: func(string) ([]byte, error) { return []byte{9}, errors.New("room gone") }})
	d.Changed("a", 1)
	clock.Advance(DefaultDebounce)
	if c := decodeChanged(t, rc.wait(t, 1)[0].body); c.StateVector != "" || c.Updates != 1 {
		t.Fatalf("event = %+v, want 1 update and an empty state_vector", c)
	}
}

// A panic in StateVector is recovered and logged; later windows still work.
func TestStateVectorPanic(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	rc := newReceiver(t, clock, nil)
	d := newDispatcher(t, []Config{{URL: rc.URL, Secret: "s"}}, Options{Clock: clock,
		StateVector: func(room string) ([]byte, error) {
			if room == "bad" {
				panic("boom")
			}
			return nil, nil
		}})
	d.Changed("bad", 1)
	clock.Advance(DefaultDebounce)
	waitUntil(t, "the bad window to end", func() bool { return d.openWindows() == 0 })
	d.Changed("good", 1)
	clock.Advance(DefaultDebounce)
	if c := decodeChanged(t, rc.wait(t, 1)[0].body); c.Room != "good" {
		t.Fatalf("event = %+v, want room good only", c)
	}
}

// The real clock, end to end, with a short window.
func TestRealClock(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, realClock{}, nil)
	d := newDispatcher(t, []Config{{URL: rc.URL, Secret: "s", Debounce: 20 * time.Millisecond}},
		Options{StateVector: fixedStateVector([]byte{7})})
	start := time.Now()
	d.Changed("a", 2)
	d.Changed("a", 3)
	got := rc.wait(t, 1)
	if c := decodeChanged(t, got[0].body); c.Updates != 5 || c.StateVector != "Bw==" {
		t.Fatalf("event = %+v, want 5 updates and state_vector Bw==", c)
	}
	if got[0].at.Sub(start) < 20*time.Millisecond {
		t.Errorf("event arrived %v after the first change, before the window ended", got[0].at.Sub(start))
	}
	ts, err := time.Parse(time.RFC3339, decodeChanged(t, got[0].body).Time)
	if err != nil || ts.Location() != time.UTC {
		t.Errorf("time %q: not RFC 3339 UTC (%v)", decodeChanged(t, got[0].body).Time, err)
	}
}
