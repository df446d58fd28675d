package webhook

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Event names, as sent in the body's "event" and the X-WireDB-Event header
// and as listed in Config.Events.
const (
	// EventRoomChanged is sent once per debounce window after a room changed.
	EventRoomChanged = "room.changed"
	// EventRoomLoaded is sent when a room is loaded into memory.
	EventRoomLoaded = "room.loaded"
	// EventRoomUnloaded is sent when a room is unloaded from memory.
	EventRoomUnloaded = "room.unloaded"
)

// Defaults applied to zero fields, in one place (Config.withDefaults and
// Options.withDefaults).
const (
	// DefaultDebounce is how long a room's changes are gathered into one
	// room.changed event.
	DefaultDebounce = 2 * time.Second
	// DefaultTimeout bounds one delivery attempt, response included.
	DefaultTimeout = 5 * time.Second
	// DefaultQueueSize bounds the deliveries waiting for one webhook.
	DefaultQueueSize = 1000
	// DefaultMaxAttempts is how many times one delivery is tried.
	DefaultMaxAttempts = 5
)

// Config is one webhook.
type Config struct {
	// URL receives the POSTs; an absolute http or https URL. Redirects are
	// not followed (a 3xx is a failed attempt) unless Options.Client does.
	URL string
	// Secret is the HMAC-SHA256 key of the X-WireDB-Signature header.
	// Required.
	Secret string
	// Debounce is how long a room's changes are gathered into one
	// room.changed event, counted from the first change. Zero means
	// DefaultDebounce (2s).
	Debounce time.Duration
	// Timeout bounds one delivery attempt, reading the response included.
	// Zero means DefaultTimeout (5s).
	Timeout time.Duration
	// Events are the events sent to URL. Empty means room.changed only.
	Events []string
}

// Validate checks c without changing it: URL absolute http(s), Secret
// non-empty, Events known and not repeated, durations not negative (zero
// means the default).
func (c Config) Validate() error {
	u, err := url.Parse(c.URL)
	if err != nil {
		// url.Error quotes the whole URL, password included: keep the
		// reason only.
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err
		}
		return fmt.Errorf("webhook url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("webhook url %q: must be an absolute http or https URL", u.Redacted())
	}
	if c.Secret == "" {
		return errors.New("webhook secret: required")
	}
	if c.Debounce < 0 {
		return fmt.Errorf("webhook debounce %v: must not be negative", c.Debounce)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("webhook timeout %v: must not be negative", c.Timeout)
	}
	seen := make(map[string]bool, len(c.Events))
	for _, ev := range c.Events {
		switch ev {
		case EventRoomChanged, EventRoomLoaded, EventRoomUnloaded:
		default:
			return fmt.Errorf("webhook event %q: unknown (want %s, %s or %s)",
				ev, EventRoomChanged, EventRoomLoaded, EventRoomUnloaded)
		}
		if seen[ev] {
			return fmt.Errorf("webhook event %q: listed twice", ev)
		}
		seen[ev] = true
	}
	return nil
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Debounce == 0 {
		c.Debounce = DefaultDebounce
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if len(c.Events) == 0 {
		c.Events = []string{EventRoomChanged}
	}
	return c
}

// wants reports whether c lists event; c has its defaults.
func (c Config) wants(event string) bool {
	for _, ev := range c.Events {
		if ev == event {
			return true
		}
	}
	return false
}
