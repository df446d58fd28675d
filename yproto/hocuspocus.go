package yproto

// The Hocuspocus protocol (@hocuspocus/provider and @hocuspocus/server 4.x, read from their
// sources: provider src/OutgoingMessages/*.ts, server src/MessageReceiver.ts and
// src/OutgoingMessage.ts, common src/auth.ts). It multiplexes documents over one WebSocket:
// every message but Ping and Pong starts with the document's name,
//
//	varString(name) varUint(type) body
//
// and, for the types y-protocols defines (sync, awareness, query awareness), the body is
// y-websocket's. The name may be "name\x00sessionId" for providers with sessionAwareness.
// Ping and Pong are one byte, no name.

// HocuspocusType is a Hocuspocus message type (server src/types.ts MessageType).
type HocuspocusType uint64

const (
	HocuspocusSync           HocuspocusType = 0 // y-protocols sync body
	HocuspocusAwareness      HocuspocusType = 1 // varUint8Array(awareness update)
	HocuspocusAuth           HocuspocusType = 2 // varUint(auth type) varString(token|reason|scope) ...
	HocuspocusQueryAwareness HocuspocusType = 3 // nothing follows
	HocuspocusStateless      HocuspocusType = 5 // varString(payload)
	HocuspocusClose          HocuspocusType = 7 // client: nothing; server: varString(reason)
	HocuspocusSyncStatus     HocuspocusType = 8 // server: varInt(1 applied | 0 refused)
	HocuspocusPing           HocuspocusType = 9 // one byte, no name
	HocuspocusPong           HocuspocusType = 10
)

// Hocuspocus auth types (common src/auth.ts AuthMessageType).
const (
	hocuspocusAuthToken            = 0 // client: varString(token) [varString(provider version)]
	hocuspocusAuthPermissionDenied = 1 // server: varString(reason)
	hocuspocusAuthAuthenticated    = 2 // server: varString("read-write" | "readonly")
)

// HocuspocusMessage is one decoded message a Hocuspocus provider sent.
type HocuspocusMessage struct {
	// Name is the document name as sent, sessionId included; empty for Ping and Pong.
	Name string
	Type HocuspocusType
	// Sync is the sync message type, when Type is HocuspocusSync.
	Sync SyncType
	// Payload aliases the frame: the state vector or update (sync), the awareness update,
	// the token (auth), the UTF-8 payload (stateless); nil otherwise.
	Payload []byte
	// Version is the provider's version from its auth message (absent before 4.x: empty).
	Version string
}

// IsHocuspocusPing reports whether frame is a connection-level Ping or Pong: one byte. A
// named message is never one byte long (its name's length comes first, then the type).
func IsHocuspocusPing(frame []byte) bool {
	return len(frame) == 1 && (frame[0] == byte(HocuspocusPing) || frame[0] == byte(HocuspocusPong))
}

// LooksLikeHocuspocusAuth reports whether frame is a Hocuspocus auth message with a token,
// the first message of every provider: a non-empty name, then type 2 and auth type 0. A
// y-websocket client's first message is a sync step 1, 0x00 0x00, which never reads so
// (a name's length comes first, and it is not 0).
func LooksLikeHocuspocusAuth(frame []byte) bool {
	r := reader{buf: frame}
	name, err := r.readString("document name")
	if err != nil || len(name) == 0 {
		return false
	}
	typ, err := r.readVarUint("message type")
	if err != nil || typ != uint64(HocuspocusAuth) {
		return false
	}
	auth, err := r.readVarUint("auth type")
	return err == nil && auth == hocuspocusAuthToken
}

// DecodeHocuspocus decodes the envelope of one message from a Hocuspocus provider. It fails
// with ErrUnknownMessageType (wrapped) for a type a provider never sends (the
// server-internal 4 and 6, SyncStatus, unknown ones), and with ErrTruncated or ErrMalformed
// for a bad envelope, trailing bytes included. Payloads are not looked into.
func DecodeHocuspocus(frame []byte) (HocuspocusMessage, error) {
	if IsHocuspocusPing(frame) {
		return HocuspocusMessage{Type: HocuspocusType(frame[0])}, nil
	}
	r := reader{buf: frame}
	name, err := r.readString("document name")
	if err != nil {
		return HocuspocusMessage{}, err
	}
	start := r.pos
	t, err := r.readVarUint("message type")
	if err != nil {
		return HocuspocusMessage{}, err
	}
	m := HocuspocusMessage{Name: string(name), Type: HocuspocusType(t)}
	switch m.Type {
	case HocuspocusSync:
		var ym Message
		err = r.readSyncEnvelope(&ym)
		m.Sync, m.Payload = ym.Sync, ym.Payload
	case HocuspocusAwareness:
		m.Payload, err = r.readVarBytes("awareness update")
	case HocuspocusAuth:
		err = r.readHocuspocusAuth(&m)
	case HocuspocusQueryAwareness, HocuspocusClose:
		// nothing follows
	case HocuspocusStateless:
		m.Payload, err = r.readString("stateless payload")
	default:
		return HocuspocusMessage{}, errAt(ErrUnknownMessageType, start, "hocuspocus message type %d", t)
	}
	if err != nil {
		return HocuspocusMessage{}, err
	}
	if err := r.expectEnd("message"); err != nil {
		return HocuspocusMessage{}, err
	}
	return m, nil
}

func (r *reader) readHocuspocusAuth(m *HocuspocusMessage) error {
	start := r.pos
	a, err := r.readVarUint("auth message type")
	if err != nil {
		return err
	}
	if a != hocuspocusAuthToken {
		return errAt(ErrUnknownMessageType, start, "hocuspocus auth message type %d", a)
	}
	if m.Payload, err = r.readString("token"); err != nil {
		return err
	}
	if r.remaining() > 0 {
		v, err := r.readString("provider version")
		if err != nil {
			return err
		}
		m.Version = string(v)
	}
	return nil
}

// HocuspocusKind returns the type of a Hocuspocus message, and for sync its sync type, from
// its first bytes, without checking the rest; ok is false when even those cannot be read.
func HocuspocusKind(frame []byte) (t HocuspocusType, sync SyncType, ok bool) {
	if IsHocuspocusPing(frame) {
		return HocuspocusType(frame[0]), 0, true
	}
	n, w, kind := decodeVarUint(frame)
	if kind != nil || n > uint64(len(frame)-w) {
		return 0, 0, false
	}
	rest := frame[w+int(n):]
	if len(rest) == 0 || rest[0] >= 0x80 {
		return 0, 0, false
	}
	t = HocuspocusType(rest[0])
	if t == HocuspocusSync {
		if len(rest) < 2 || rest[1] > byte(SyncUpdate) {
			return t, 0, false
		}
		sync = SyncType(rest[1])
	}
	return t, sync, true
}

// AppendHocuspocusName appends a document name: every named message starts with it,
// followed by a y-websocket message (AppendSyncStep1, AppendAwareness, ...) or one of the
// Hocuspocus bodies below.
func AppendHocuspocusName(dst []byte, name string) []byte {
	return AppendVarString(dst, name)
}

// AppendHocuspocusAuthenticated appends the answer to a provider's token: scope is
// "read-write" or "readonly".
func AppendHocuspocusAuthenticated(dst []byte, name, scope string) []byte {
	dst = AppendVarString(dst, name)
	dst = AppendVarUint(dst, uint64(HocuspocusAuth))
	dst = AppendVarUint(dst, hocuspocusAuthAuthenticated)
	return AppendVarString(dst, scope)
}

// AppendHocuspocusPermissionDenied appends a refusal of a provider's token.
func AppendHocuspocusPermissionDenied(dst []byte, name, reason string) []byte {
	dst = AppendVarString(dst, name)
	dst = AppendVarUint(dst, uint64(HocuspocusAuth))
	dst = AppendVarUint(dst, hocuspocusAuthPermissionDenied)
	return AppendVarString(dst, reason)
}

// AppendHocuspocusSyncStatus appends the acknowledgement of a provider's step 2 or update:
// applied true decrements the provider's unsyncedChanges, false (a refused write) does not.
// The flag is a lib0 varInt, whose encodings of 0 and 1 are the bytes 0 and 1.
func AppendHocuspocusSyncStatus(dst []byte, name string, applied bool) []byte {
	dst = AppendVarString(dst, name)
	dst = AppendVarUint(dst, uint64(HocuspocusSyncStatus))
	if applied {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// AppendHocuspocusStateless appends a stateless message carrying payload.
func AppendHocuspocusStateless(dst []byte, name string, payload []byte) []byte {
	dst = AppendVarString(dst, name)
	dst = AppendVarUint(dst, uint64(HocuspocusStateless))
	return AppendVarBytes(dst, payload)
}

// AppendHocuspocusPing appends a connection-level Ping; a 4.x provider answers with a Pong.
func AppendHocuspocusPing(dst []byte) []byte {
	return append(dst, byte(HocuspocusPing))
}
