package roomhub

import (
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Defaults applied by Options.withDefaults to zero fields.
const (
	// DefaultMaxMessageSize is the default bound of one inbound message,
	// which a Transport enforces (the hub never sees a larger one). A real
	// document's sync step 2 can be many MiB; coder/websocket's own default
	// of 32 KiB would cut such clients off.
	DefaultMaxMessageSize = 16 << 20
	// DefaultOutboundQueueBytes bounds what may wait to be written to one
	// connection before it is closed as too slow.
	DefaultOutboundQueueBytes = 4 << 20
	// DefaultWriteTimeout bounds one WebSocket write.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultPingInterval is how often an idle peer is pinged.
	DefaultPingInterval = 30 * time.Second
	// DefaultIdleUnload is how long a room without connections stays loaded.
	DefaultIdleUnload = 30 * time.Second
	// DefaultCompactRecords is the tail length that triggers compaction.
	DefaultCompactRecords = 1000
	// DefaultCompactBytes is the tail size that triggers compaction.
	DefaultCompactBytes = 4 << 20
	// DefaultMaxAwarenessEntries bounds the entries of one awareness update.
	DefaultMaxAwarenessEntries = 1000
	// DefaultShutdownTimeout bounds Close.
	DefaultShutdownTimeout = 10 * time.Second
)

// Options configure a Hub. Zero values mean the documented defaults.
type Options struct {
	OutboundQueueBytes  int
	WriteTimeout        time.Duration
	PingInterval        time.Duration
	IdleUnload          time.Duration
	CompactRecords      int
	CompactBytes        int
	MaxAwarenessEntries int
	ShutdownTimeout     time.Duration

	// Optional limits; zero means none.

	// MaxRooms bounds the rooms in memory; a join that would load one more
	// is closed with 1013 (try again later).
	MaxRooms int
	// MaxConnsPerRoom bounds one room's connections; one more is closed
	// with 1013.
	MaxConnsPerRoom int
	// MaxDocumentSize bounds a room's document, in bytes of its stored
	// updates (merged state plus updates since): an update that would pass
	// it is refused, its connection closed with 1008, and the room keeps
	// what it had.
	MaxDocumentSize int64

	Fsync  FsyncPolicy
	Logger *zap.Logger
	// Metrics receives counts and timings; nil means none.
	Metrics Metrics
}

// FsyncPolicy says when appended updates are flushed to stable storage.
type FsyncPolicy struct {
	// Mode is FsyncInterval (the zero value), FsyncAlways or FsyncNever.
	Mode FsyncMode
	// Interval is used with FsyncInterval; zero means one second.
	Interval time.Duration
}

// FsyncMode names a durability policy.
type FsyncMode int

const (
	// FsyncInterval syncs every room with unsynced writes every Interval.
	FsyncInterval FsyncMode = iota
	// FsyncAlways syncs before an update is relayed.
	FsyncAlways
	// FsyncNever leaves flushing to the operating system.
	FsyncNever
)

// String is the policy's name in the Caddyfile.
func (m FsyncMode) String() string {
	switch m {
	case FsyncInterval:
		return "interval"
	case FsyncAlways:
		return "always"
	case FsyncNever:
		return "never"
	}
	return fmt.Sprintf("FsyncMode(%d)", int(m))
}

func (o Options) withDefaults() Options {
	if o.OutboundQueueBytes <= 0 {
		o.OutboundQueueBytes = DefaultOutboundQueueBytes
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.PingInterval <= 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.IdleUnload <= 0 {
		o.IdleUnload = DefaultIdleUnload
	}
	if o.CompactRecords <= 0 {
		o.CompactRecords = DefaultCompactRecords
	}
	if o.CompactBytes <= 0 {
		o.CompactBytes = DefaultCompactBytes
	}
	if o.MaxAwarenessEntries <= 0 {
		o.MaxAwarenessEntries = DefaultMaxAwarenessEntries
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = DefaultShutdownTimeout
	}
	if o.Fsync.Interval <= 0 {
		o.Fsync.Interval = time.Second
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Metrics == nil {
		o.Metrics = nopMetrics{}
	}
	return o
}
