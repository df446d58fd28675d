package roomhub

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Transport is one client connection's socket. It owns the socket: every
// byte written to it, data or control, goes through the transport, which
// keeps frames whole. The hub sees messages, never frames.
//
// ReadMessage is called by one goroutine at a time (the connection's
// reader). WriteMessages may be called by several goroutines at once (the
// writers of the documents a Hocuspocus socket carries): each call's
// messages go out whole and in order, calls one after the other. Ping,
// Close and CloseNow may be called from any goroutine, concurrently with
// each other and with reads and writes.
type Transport interface {
	// ReadMessage blocks until the next whole message has arrived and
	// returns it. Its error ends the connection; if the connection ended
	// with a close code (sent by the peer, or by the transport itself, as
	// for a message over its size limit), the error is or wraps a
	// *CloseError.
	ReadMessage(ctx context.Context) (MessageType, []byte, error)
	// WriteMessages writes msgs, in order, as binary messages, giving up
	// after timeout. Each message is written whole or, on an error, the
	// connection is unusable: the caller closes it.
	WriteMessages(msgs [][]byte, timeout time.Duration) error
	// Ping sends a ping and waits for the pong, or for ctx to end.
	Ping(ctx context.Context) error
	// Close sends a close frame with code and reason (after a write in
	// progress, if any, has ended) and waits for the close handshake,
	// for a few seconds at most. Only the first call of Close or CloseNow
	// has an effect.
	Close(code StatusCode, reason string) error
	// CloseNow closes the socket without a handshake. It ends a read or
	// a write blocked on it.
	CloseNow() error
}

// MessageType is a WebSocket message's type.
type MessageType uint8

const (
	// MessageBinary is a binary message: every y-websocket message.
	MessageBinary MessageType = iota + 1
	// MessageText is a text message, which no Yjs protocol uses.
	MessageText
)

// StatusCode is a WebSocket close code (RFC 6455 section 7.4).
type StatusCode uint16

// The close codes the hub uses.
const (
	StatusNormalClosure           StatusCode = 1000
	StatusGoingAway               StatusCode = 1001
	StatusUnsupportedData         StatusCode = 1003
	StatusInvalidFramePayloadData StatusCode = 1007
	StatusPolicyViolation         StatusCode = 1008
	StatusMessageTooBig           StatusCode = 1009
	StatusInternalError           StatusCode = 1011
	StatusServiceRestart          StatusCode = 1012
	StatusTryAgainLater           StatusCode = 1013
)

// CloseError is how ReadMessage reports a connection that ended with a
// close code.
type CloseError struct {
	Code   StatusCode
	Reason string
	// TooBig is set when the transport itself closed the connection
	// (with StatusMessageTooBig) because an inbound message announced
	// more than its size limit.
	TooBig bool
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("websocket closed with %d %q", e.Code, e.Reason)
}

// closeStatus is the close code that ended a connection, from the error
// ReadMessage returned, or StatusGoingAway when it ended without one (a
// dropped TCP connection).
func closeStatus(err error) (StatusCode, *CloseError) {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code, ce
	}
	return StatusGoingAway, nil
}
