package storage

import "github.com/caddy-wiredb/wiredb/yproto"

// Log is one room's ordered, durable log of Yjs v1 updates: the seam
// between a room and where it is stored. FileLog (a WireDB file) implements
// it; a log on a shared service (a Redis stream, say) can too.
//
// Its methods are safe for concurrent use. Append and Sync may run at the
// same time: a Sync covers every Append that returned before it began, and
// Appends made while it runs wait for the next one (group commit).
type Log interface {
	// Append adds update at the log's end and returns the log's end after
	// it. When it returns nil, the update survives a crash of the process;
	// it survives a power loss once a Sync has covered it.
	Append(update []byte) (Position, error)
	// Sync makes durable every update appended before the call. It is a
	// no-op when there is nothing to sync.
	Sync() error
	// Unsynced is the number of appended updates no Sync has covered yet.
	Unsynced() int
	// End returns the log's current end.
	End() Position
	// Stats describes the log's size, and how much was appended since
	// its last checkpoint.
	Stats() Stats
	// Checkpoint replaces every update up to upTo (a Position taken from
	// this log) with merged, their merge, and keeps the updates appended
	// after upTo. It returns an error wrapping ErrStalePosition, with
	// nothing changed, if another checkpoint replaced the log after upTo
	// was taken.
	Checkpoint(merged []byte, upTo Position) error
	// Close makes the log durable and closes it; later calls of the other
	// methods return ErrClosed.
	Close() error
	// Name says where the log is (a file's path), for logs and errors.
	Name() string
}

// Position is a point in a Log: everything appended up to there. Only the
// log that returned it may interpret it; its fields mean something to that
// log alone (for a FileLog, which file, its size and its record count).
type Position struct {
	Gen     uint64
	Offset  int64
	Records int
}

// Stats describes a Log. Sizes are in the log's own bytes (for a file, its
// header and length prefixes included).
type Stats struct {
	Bytes   int64
	Records int
	// CheckpointBytes is the size of the log's last checkpoint (for a
	// file: the header and its one record; the header alone if it has none).
	// A log opened with exactly one update counts it as a checkpoint.
	CheckpointBytes int64
	// SinceCheckpointRecords and SinceCheckpointBytes are what was
	// appended after the checkpoint.
	SinceCheckpointRecords int
	SinceCheckpointBytes   int64
}

// Opened is a log as LogStore.Open found it.
type Opened struct {
	Log Log
	// Updates are every update in the log, in order, validated.
	Updates [][]byte
	// Recovery says what opening had to repair.
	Recovery Recovery
	// Snapshot is yproto's parse of the log's only update when it holds
	// exactly one (as after a checkpoint), so that the caller does not
	// parse it again; nil otherwise.
	Snapshot *yproto.UpdateInfo
}

// LogStore opens the logs of rooms by key. It is safe for concurrent use;
// callers must not open two Logs for the same key at once.
type LogStore interface {
	// Open opens (creating if needed) the log of key and reads it whole.
	// It returns an error wrapping ErrNotWireDB, ErrUnknownVersion or
	// ErrCorrupt for a log it cannot read, which it leaves untouched.
	Open(key string) (Opened, error)
	// Exists reports whether key has a log, without creating one.
	Exists(key string) (bool, error)
}

// Interface guards
var (
	_ LogStore = (*Store)(nil)
	_ Log      = (*FileLog)(nil)
)
