package yproto

import (
	"bytes"
	"errors"
	"testing"
)

// TestMessagesYProtocolsVectors decodes messages written by y-protocols and checks that the
// Append functions write exactly the same bytes.
func TestMessagesYProtocolsVectors(t *testing.T) {
	t.Parallel()
	for _, v := range loadVectors(t).Messages {
		t.Run(v.Name, func(t *testing.T) {
			t.Parallel()
			m, err := DecodeMessage(v.Hex)
			if err != nil {
				t.Fatalf("DecodeMessage: %v", err)
			}
			if uint64(m.Type) != v.Type || uint64(m.Sync) != v.Sync || !bytes.Equal(m.Payload, v.PayloadHex) {
				t.Fatalf("got %v/%v payload %x, want %d/%d payload %x", m.Type, m.Sync, m.Payload, v.Type, v.Sync, []byte(v.PayloadHex))
			}
			if got := appendMessage(t, nil, m, v.Reason); !bytes.Equal(got, v.Hex) {
				t.Errorf("re-encoded %x, y-protocols wrote %x", got, []byte(v.Hex))
			}
			checkPayload(t, m)
		})
	}
}

// TestMessagesPycrdtVectors decodes messages written by pycrdt and validates their payloads.
func TestMessagesPycrdtVectors(t *testing.T) {
	t.Parallel()
	vf := loadVectors(t)
	if len(vf.PycrdtMessages) == 0 {
		t.Fatal("no pycrdt messages in the vectors")
	}
	for _, v := range vf.PycrdtMessages {
		m, err := DecodeMessage(v.Hex)
		if err != nil {
			t.Errorf("%s: DecodeMessage: %v", v.Name, err)
			continue
		}
		checkPayload(t, m)
	}
}

// appendMessage re-encodes m with the Append function for its type.
func appendMessage(t *testing.T, dst []byte, m Message, reason *string) []byte {
	t.Helper()
	switch m.Type {
	case MessageSync:
		switch m.Sync {
		case SyncStep1:
			return AppendSyncStep1(dst, m.Payload)
		case SyncStep2:
			return AppendSyncStep2(dst, m.Payload)
		case SyncUpdate:
			return AppendSyncUpdate(dst, m.Payload)
		}
	case MessageAwareness:
		return AppendAwareness(dst, m.Payload)
	case MessageQueryAwareness:
		return AppendQueryAwareness(dst)
	case MessageAuth:
		r := string(m.Payload)
		if reason != nil {
			r = *reason
		}
		return AppendPermissionDenied(dst, r)
	}
	t.Fatalf("no encoder for %+v", m)
	return nil
}

// checkPayload validates the payload of a real message with the matching validator.
func checkPayload(t *testing.T, m Message) {
	t.Helper()
	var err error
	switch {
	case m.Type == MessageSync && m.Sync == SyncStep1:
		_, err = ValidateStateVector(m.Payload)
	case m.Type == MessageSync:
		_, err = ValidateUpdate(m.Payload, Limits{})
	case m.Type == MessageAwareness:
		_, err = DecodeAwarenessUpdate(m.Payload, 0)
	}
	if err != nil {
		t.Errorf("payload of %v message: %v", m.Type, err)
	}
}

func TestAppendMessages(t *testing.T) {
	t.Parallel()
	payload := []byte{1, 2, 3}
	for _, tc := range []struct {
		name string
		got  []byte
		want []byte
	}{
		{"step1", AppendSyncStep1([]byte{0xee}, payload), []byte{0xee, 0, 0, 3, 1, 2, 3}},
		{"step2", AppendSyncStep2(nil, payload), []byte{0, 1, 3, 1, 2, 3}},
		{"update", AppendSyncUpdate(nil, payload), []byte{0, 2, 3, 1, 2, 3}},
		{"update empty", AppendSyncUpdate(nil, nil), []byte{0, 2, 0}},
		{"awareness", AppendAwareness(nil, payload), []byte{1, 3, 1, 2, 3}},
		{"query awareness", AppendQueryAwareness(nil), []byte{3}},
		{"permission denied", AppendPermissionDenied(nil, "no"), []byte{2, 0, 2, 'n', 'o'}},
	} {
		if !bytes.Equal(tc.got, tc.want) {
			t.Errorf("%s: %x, want %x", tc.name, tc.got, tc.want)
		}
	}
}

func TestDecodeMessagePayloadAliasesFrame(t *testing.T) {
	t.Parallel()
	frame := AppendSyncUpdate(nil, []byte{0, 0})
	m, err := DecodeMessage(frame)
	if err != nil {
		t.Fatal(err)
	}
	frame[len(frame)-1] = 7
	if m.Payload[1] != 7 {
		t.Error("payload is a copy; the API promises an alias")
	}
	if cap(m.Payload) != len(m.Payload) {
		t.Error("payload capacity reaches past the payload; an append would overwrite the frame")
	}
}

func TestDecodeMessageHostile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty frame", nil, ErrTruncated},
		{"message type 4", enc{}.u(4), ErrUnknownMessageType},
		{"message type 2^63", enc{}.u(1 << 63), ErrUnknownMessageType},
		{"message type overflows", bytes.Repeat([]byte{0xff}, 11), ErrOutOfRange},
		{"sync without sync type", enc{}.u(0), ErrTruncated},
		{"sync type 3", enc{}.u(0, 3, 0), ErrUnknownMessageType},
		{"sync without payload", enc{}.u(0, 2), ErrTruncated},
		{"sync payload length 2^40", enc{}.u(0, 2, 1<<40, 0, 0), ErrTruncated},
		{"sync payload length 2^62", enc{}.u(0, 1, 1<<62, 0, 0), ErrTruncated},
		{"sync payload longer than frame", enc{}.u(0, 0, 3, 0, 0), ErrTruncated},
		{"sync payload shorter than frame", enc{}.u(0, 2, 2, 0, 0, 0), ErrMalformed},
		{"awareness payload length 2^40", enc{}.u(1, 1<<40), ErrTruncated},
		{"awareness trailing byte", enc{}.u(1, 1, 0, 0), ErrMalformed},
		{"auth type 1", enc{}.u(2, 1, 0), ErrUnknownMessageType},
		{"auth reason truncated", enc{}.u(2, 0, 5).b('a'), ErrTruncated},
		{"auth trailing byte", enc{}.u(2, 0, 1).b('a', 'b'), ErrMalformed},
		{"query awareness with trailing byte", enc{}.u(3, 0), ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := DecodeMessage(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if m.Type != 0 || m.Payload != nil {
				t.Errorf("Message not zero on error: %+v", m)
			}
		})
	}
}

func TestMessageTypeStrings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ got, want string }{
		{MessageSync.String(), "sync"},
		{MessageAwareness.String(), "awareness"},
		{MessageAuth.String(), "auth"},
		{MessageQueryAwareness.String(), "query_awareness"},
		{MessageType(9).String(), "unknown(9)"},
		{SyncStep1.String(), "step1"},
		{SyncStep2.String(), "step2"},
		{SyncUpdate.String(), "update"},
		{SyncType(5).String(), "unknown(5)"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
