package roomhub

import (
	"errors"
	"fmt"

	"github.com/caddy-wiredb/wiredb/storage"
	"github.com/caddy-wiredb/wiredb/yproto"
)

var (
	// ErrHubClosed is returned by Start once Close has begun.
	ErrHubClosed = errors.New("roomhub: hub closed")
	errQueueFull = errors.New("roomhub: outbound queue full")

	errTooManyRooms     = errors.New("roomhub: too many rooms")
	errRoomFull         = errors.New("roomhub: room full")
	errDocumentTooLarge = errors.New("roomhub: document size limit")
	errSharedLoad       = errors.New("roomhub: could not read the room whole from the cluster")
	errRoomBroken       = errors.New("roomhub: room no longer follows the shared log")
	errSharedLogBusy    = errors.New("roomhub: too many updates waiting for the shared log")
	// ErrRoomReset is returned by a SharedRoom when the room's state in
	// the cluster was reset (e.g. Redis lost its data) since the hub
	// joined it.
	ErrRoomReset = errors.New("roomhub: room reset in the shared log")
)

// protocolError closes a connection with a WebSocket status and a reason.
type protocolError struct {
	code   StatusCode
	reason string
	kind   RejectReason
}

func (e *protocolError) Error() string { return fmt.Sprintf("%d %s", e.code, e.reason) }

// invalid closes with 1007 for input that cannot be read; the reason says
// what was being read and, from err, what was wrong where.
func invalid(what string, err error) *protocolError {
	return decodeFailure(StatusInvalidFramePayloadData, RejectMalformed, what, err)
}

// rejectUnsupported closes with 1003 for a message the protocol does not
// define.
func rejectUnsupported(what string, err error) *protocolError {
	return decodeFailure(StatusUnsupportedData, RejectUnsupported, what, err)
}

func decodeFailure(code StatusCode, kind RejectReason, what string, err error) *protocolError {
	return &protocolError{code, truncateReason(what + ": " + errorDetail(err)), kind}
}

// errorDetail is what a close reason (123 bytes at most) says of err: for
// a yproto error its detail and offset; the reason's own prefix says what
// was being read.
func errorDetail(err error) string {
	var e *yproto.Error
	if errors.As(err, &e) {
		return e.Reason()
	}
	return err.Error()
}

func storageFailure(err error) *protocolError {
	if errors.Is(err, errQueueFull) {
		return &protocolError{StatusTryAgainLater, "client too slow: outbound queue full", RejectSlowClient}
	}
	if errors.Is(err, errSharedLogBusy) {
		return &protocolError{StatusTryAgainLater, "server busy: the cluster's shared log is slow", RejectInternal}
	}
	if errors.Is(err, errRoomBroken) {
		return &protocolError{StatusTryAgainLater, "room lost its place in the cluster's shared log: reconnect to resync", RejectInternal}
	}
	if errors.Is(err, errDocumentTooLarge) {
		return &protocolError{StatusPolicyViolation, "update refused: document size limit reached", RejectDocumentSize}
	}
	return &protocolError{StatusInternalError, "server could not store the update", RejectInternal}
}

// truncateReason keeps a close reason within the 123 bytes a close frame
// allows, without cutting a UTF-8 sequence.
func truncateReason(s string) string {
	const max = 123
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut]
}

// roomUnavailableReason says why a room could not open without naming
// server paths: the log has the full error, the client gets its kind.
func roomUnavailableReason(err error) string {
	switch {
	case errors.Is(err, storage.ErrNotWireDB):
		return "room unavailable: its file is not a WireDB file"
	case errors.Is(err, storage.ErrUnknownVersion):
		return "room unavailable: its file has an unknown WireDB version"
	case errors.Is(err, storage.ErrCorrupt):
		return "room unavailable: its file has a corrupt record"
	case errors.Is(err, ErrHubClosed):
		return "server shutting down"
	case errors.Is(err, errSharedLoad):
		return "room unavailable: could not read its whole state from the cluster; try again"
	default:
		return "room unavailable: storage error"
	}
}
