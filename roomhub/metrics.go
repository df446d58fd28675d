package roomhub

import "time"

// Metrics receives what a Hub does, for monitoring. Its methods are called
// on hot paths, concurrently: they must be cheap and safe for concurrent use.
// The caddymodule package implements it with Prometheus collectors; roomhub
// itself depends on no metrics library.
type Metrics interface {
	ConnOpened()
	ConnClosed()
	RoomLoaded(took time.Duration)
	RoomUnloaded()
	// Message counts one inbound or outbound message of a protocol and kind.
	Message(dir Direction, proto Protocol, kind MessageKind, bytes int)
	// Rejected counts a connection closed for what it sent or failed to
	// read; SlowClient is one of the reasons.
	Rejected(reason RejectReason)
	Appended(took time.Duration)
	Synced(took time.Duration)
	Compacted(took time.Duration)
	// FileBytes adds delta to the total size of the loaded rooms' files.
	FileBytes(delta int64)
}

// Direction is inbound (from clients) or outbound.
type Direction uint8

const (
	Inbound Direction = iota
	Outbound
)

// MessageKind classifies messages for metrics (see Codec.Kind).
type MessageKind uint8

const (
	KindSyncStep1 MessageKind = iota
	KindSyncStep2
	KindSyncUpdate
	KindAwareness
	KindAuth
	KindQueryAwareness
	KindStateless  // Hocuspocus
	KindSyncStatus // Hocuspocus: acknowledgements
	KindClose      // Hocuspocus: a document closed on its socket
	KindPing       // Hocuspocus: connection-level Ping and Pong
	KindOther      // text frames, unknown types
	NumMessageKinds
)

var messageKindNames = [NumMessageKinds]string{"sync_step1", "sync_step2", "sync_update", "awareness", "auth", "query_awareness",
	"stateless", "sync_status", "close", "ping", "other"}

func (k MessageKind) String() string {
	if k < NumMessageKinds {
		return messageKindNames[k]
	}
	return "other"
}

// RejectReason says why a connection was closed by the server.
type RejectReason uint8

const (
	RejectMalformed    RejectReason = iota // 1007
	RejectUnsupported                      // 1003: text frames, unknown types
	RejectTooBig                           // 1009
	RejectRateLimit                        // 1008
	RejectDocumentSize                     // 1008
	RejectSlowClient                       // 1013: outbound queue full
	RejectRoomLimit                        // 1013: max_rooms, max_connections_per_room
	RejectPingTimeout                      // 1001: no pong
	RejectInternal                         // 1011: storage failure, panic
	RejectUnauthorized                     // a Hocuspocus document's token refused
	NumRejectReasons
)

var rejectReasonNames = [NumRejectReasons]string{"malformed", "unsupported", "too_big", "rate_limit", "document_size", "slow_client", "room_limit", "ping_timeout", "internal", "unauthorized"}

func (r RejectReason) String() string {
	if r < NumRejectReasons {
		return rejectReasonNames[r]
	}
	return "internal"
}

// nopMetrics is the default Metrics.
type nopMetrics struct{}

func (nopMetrics) ConnOpened()                                   {}
func (nopMetrics) ConnClosed()                                   {}
func (nopMetrics) RoomLoaded(time.Duration)                      {}
func (nopMetrics) RoomUnloaded()                                 {}
func (nopMetrics) Message(Direction, Protocol, MessageKind, int) {}
func (nopMetrics) Rejected(RejectReason)                         {}
func (nopMetrics) Appended(time.Duration)                        {}
func (nopMetrics) Synced(time.Duration)                          {}
func (nopMetrics) Compacted(time.Duration)                       {}
func (nopMetrics) FileBytes(int64)                               {}
