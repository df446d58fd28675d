package yproto

import "strconv"

// MessageType is the first varUint of a y-websocket message.
type MessageType uint64

// The message types of y-websocket.
const (
	MessageSync           MessageType = 0 // followed by a SyncType and a varUint8Array
	MessageAwareness      MessageType = 1 // followed by a varUint8Array holding an awareness update
	MessageAuth           MessageType = 2 // followed by an auth type (0: permission denied) and a varString reason
	MessageQueryAwareness MessageType = 3 // nothing follows; answer with all awareness states
)

// String returns the name used in logs and metric labels ("sync", "awareness", ...).
func (t MessageType) String() string {
	switch t {
	case MessageSync:
		return "sync"
	case MessageAwareness:
		return "awareness"
	case MessageAuth:
		return "auth"
	case MessageQueryAwareness:
		return "query_awareness"
	}
	return "unknown(" + strconv.FormatUint(uint64(t), 10) + ")"
}

// SyncType is the second varUint of a sync message (y-protocols sync.js).
type SyncType uint64

// The sync message types of y-protocols.
const (
	SyncStep1  SyncType = 0 // payload: the sender's state vector
	SyncStep2  SyncType = 1 // payload: an update with what the receiver lacks
	SyncUpdate SyncType = 2 // payload: an update made by the sender
)

// String returns the name used in logs and metric labels ("step1", "step2", "update").
func (s SyncType) String() string {
	switch s {
	case SyncStep1:
		return "step1"
	case SyncStep2:
		return "step2"
	case SyncUpdate:
		return "update"
	}
	return "unknown(" + strconv.FormatUint(uint64(s), 10) + ")"
}

// authPermissionDenied is the only auth message type y-protocols defines (auth.js).
const authPermissionDenied = 0

// Message is one decoded y-websocket message.
type Message struct {
	Type MessageType
	// Sync is the sync message type; it is only meaningful when Type is MessageSync.
	Sync SyncType
	// Payload aliases the decoded frame (no copy). It holds, by type:
	//   - sync: the state vector (SyncStep1) or the v1 update (SyncStep2, SyncUpdate);
	//   - awareness: the awareness update (see DecodeAwarenessUpdate);
	//   - auth: the UTF-8 bytes of the permission-denied reason;
	//   - query awareness: nil.
	// DecodeMessage does not validate it; use ValidateStateVector, ValidateUpdate or
	// DecodeAwarenessUpdate.
	Payload []byte
}

// DecodeMessage decodes the envelope of one y-websocket message: the message type, the sync
// or auth type, and a payload whose varUint length must equal exactly the bytes left in the
// frame. It fails with ErrUnknownMessageType (wrapped) for a message, sync or auth type that
// y-protocols does not define, and with ErrTruncated or ErrMalformed for a bad envelope,
// including trailing bytes. It does not look inside the payload.
func DecodeMessage(frame []byte) (Message, error) {
	r := reader{buf: frame}
	t, err := r.readVarUint("message type")
	if err != nil {
		return Message{}, err
	}
	m := Message{Type: MessageType(t)}
	switch m.Type {
	case MessageSync:
		err = r.readSyncEnvelope(&m)
	case MessageAwareness:
		m.Payload, err = r.readVarBytes("awareness update")
	case MessageAuth:
		err = r.readAuthEnvelope(&m)
	case MessageQueryAwareness:
		// nothing follows
	default:
		return Message{}, errAt(ErrUnknownMessageType, 0, "message type %d", t)
	}
	if err != nil {
		return Message{}, err
	}
	if err := r.expectEnd("message"); err != nil {
		return Message{}, err
	}
	return m, nil
}

func (r *reader) readSyncEnvelope(m *Message) error {
	start := r.pos
	s, err := r.readVarUint("sync message type")
	if err != nil {
		return err
	}
	m.Sync = SyncType(s)
	what := "update"
	switch m.Sync {
	case SyncStep1:
		what = "state vector"
	case SyncStep2, SyncUpdate:
	default:
		return errAt(ErrUnknownMessageType, start, "sync message type %d", s)
	}
	m.Payload, err = r.readVarBytes(what)
	return err
}

func (r *reader) readAuthEnvelope(m *Message) error {
	start := r.pos
	a, err := r.readVarUint("auth message type")
	if err != nil {
		return err
	}
	if a != authPermissionDenied {
		return errAt(ErrUnknownMessageType, start, "auth message type %d", a)
	}
	m.Payload, err = r.readVarBytes("permission denied reason")
	return err
}

// AppendSyncStep1 appends a sync step 1 message carrying stateVector.
func AppendSyncStep1(dst, stateVector []byte) []byte {
	return appendSync(dst, SyncStep1, stateVector)
}

// AppendSyncStep2 appends a sync step 2 message carrying update.
func AppendSyncStep2(dst, update []byte) []byte {
	return appendSync(dst, SyncStep2, update)
}

// AppendSyncUpdate appends a sync update message carrying update.
func AppendSyncUpdate(dst, update []byte) []byte {
	return appendSync(dst, SyncUpdate, update)
}

func appendSync(dst []byte, s SyncType, payload []byte) []byte {
	dst = AppendVarUint(dst, uint64(MessageSync))
	dst = AppendVarUint(dst, uint64(s))
	return AppendVarBytes(dst, payload)
}

// AppendAwareness appends an awareness message carrying awarenessUpdate (as built by
// AppendAwarenessUpdate or received in another awareness message).
func AppendAwareness(dst, awarenessUpdate []byte) []byte {
	dst = AppendVarUint(dst, uint64(MessageAwareness))
	return AppendVarBytes(dst, awarenessUpdate)
}

// AppendQueryAwareness appends a query awareness message.
func AppendQueryAwareness(dst []byte) []byte {
	return AppendVarUint(dst, uint64(MessageQueryAwareness))
}

// AppendPermissionDenied appends an auth message that tells a client it may not write
// (y-protocols auth.js writePermissionDenied); y-websocket clients log the reason.
func AppendPermissionDenied(dst []byte, reason string) []byte {
	dst = AppendVarUint(dst, uint64(MessageAuth))
	dst = AppendVarUint(dst, authPermissionDenied)
	return AppendVarString(dst, reason)
}
