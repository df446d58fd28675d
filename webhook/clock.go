package webhook

import "time"

// Clock is the time source of a Dispatcher: debounce windows, backoff waits
// and attempt timeouts all run on it, and event times are read from it.
// Tests pass a fake one; nil means the real time. Implementations must be
// safe for concurrent use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed, unless the
	// returned Timer is stopped first. It never calls f before returning.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface {
	// Stop prevents the call if it has not started; it reports whether it
	// did (false: the call has started or the timer was stopped already).
	Stop() bool
}

// realClock is the real time; *time.Timer is its Timer.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
