package yproto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

// Vectors recorded on the wire from the unmodified @hocuspocus/provider 4.8.0 (a Y.Doc with
// clientID 42 on document "notes/42", token "tok": it authenticated, synced, set its
// awareness, typed "hi", sent a stateless message and was destroyed) and from
// @hocuspocus/server 4.7.0 answering such a provider.
var (
	hpProviderAuth      = "086e6f7465732f3432020003746f6b05342e382e30"
	hpProviderStep1     = "086e6f7465732f343200000100"
	hpProviderAwareness = "086e6f7465732f34320112012a010e7b2275736572223a22616e6e227d"
	hpProviderUpdate    = "086e6f7465732f343200020c01012a000401017402686900"
	hpProviderStateless = "086e6f7465732f343205077b2278223a317d"
	hpProviderLeave     = "086e6f7465732f34320108012a02046e756c6c"
	hpProviderClose     = "086e6f7465732f343207"

	hpServerReadWrite = "086e6f7465732f343202020a726561642d7772697465"
	hpServerReadOnly  = "086e6f7465732f3432020208726561646f6e6c79"
	hpServerDenied    = "086e6f7465732f34320201117065726d697373696f6e2d64656e696564"
	hpServerApplied   = "086e6f7465732f34320801"
	hpServerRefused   = "086e6f7465732f34320800"
	hpServerStep2     = "086e6f7465732f34320001020000"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeHocuspocusProviderVectors(t *testing.T) {
	update := unhex(t, "01012a000401017402686900")
	for _, tc := range []struct {
		what string
		hex  string
		want HocuspocusMessage
	}{
		{"auth", hpProviderAuth, HocuspocusMessage{Name: "notes/42", Type: HocuspocusAuth, Payload: []byte("tok"), Version: "4.8.0"}},
		{"step 1", hpProviderStep1, HocuspocusMessage{Name: "notes/42", Type: HocuspocusSync, Sync: SyncStep1, Payload: []byte{0}}},
		{"awareness", hpProviderAwareness, HocuspocusMessage{Name: "notes/42", Type: HocuspocusAwareness,
			Payload: unhex(t, "012a010e7b2275736572223a22616e6e227d")}},
		{"update", hpProviderUpdate, HocuspocusMessage{Name: "notes/42", Type: HocuspocusSync, Sync: SyncUpdate, Payload: update}},
		{"stateless", hpProviderStateless, HocuspocusMessage{Name: "notes/42", Type: HocuspocusStateless, Payload: []byte(`{"x":1}`)}},
		{"awareness removal", hpProviderLeave, HocuspocusMessage{Name: "notes/42", Type: HocuspocusAwareness,
			Payload: unhex(t, "012a02046e756c6c")}},
		{"close", hpProviderClose, HocuspocusMessage{Name: "notes/42", Type: HocuspocusClose}},
		{"pong", "0a", HocuspocusMessage{Type: HocuspocusPong}},
	} {
		frame := unhex(t, tc.hex)
		got, err := DecodeHocuspocus(frame)
		if err != nil {
			t.Fatalf("%s: %v", tc.what, err)
		}
		if got.Name != tc.want.Name || got.Type != tc.want.Type || got.Sync != tc.want.Sync ||
			!bytes.Equal(got.Payload, tc.want.Payload) || got.Version != tc.want.Version {
			t.Errorf("%s: decoded %+v, want %+v", tc.what, got, tc.want)
		}
		if LooksLikeHocuspocusAuth(frame) != (tc.what == "auth") {
			t.Errorf("%s: LooksLikeHocuspocusAuth = %v", tc.what, !(tc.what == "auth"))
		}
		if typ, _, ok := HocuspocusKind(frame); !ok || typ != tc.want.Type {
			t.Errorf("%s: HocuspocusKind = %d %v", tc.what, typ, ok)
		}
	}
	// A y-websocket client's first message is never taken for a provider's.
	if LooksLikeHocuspocusAuth(AppendSyncStep1(nil, []byte{0})) {
		t.Error("a y-websocket step 1 looks like a Hocuspocus auth message")
	}
}

func TestAppendHocuspocusMatchesServer(t *testing.T) {
	for _, tc := range []struct {
		what string
		got  []byte
		want string
	}{
		{"authenticated read-write", AppendHocuspocusAuthenticated(nil, "notes/42", "read-write"), hpServerReadWrite},
		{"authenticated readonly", AppendHocuspocusAuthenticated(nil, "notes/42", "readonly"), hpServerReadOnly},
		{"permission denied", AppendHocuspocusPermissionDenied(nil, "notes/42", "permission-denied"), hpServerDenied},
		{"sync status applied", AppendHocuspocusSyncStatus(nil, "notes/42", true), hpServerApplied},
		{"sync status refused", AppendHocuspocusSyncStatus(nil, "notes/42", false), hpServerRefused},
		{"step 2", AppendSyncStep2(AppendHocuspocusName(nil, "notes/42"), []byte{0, 0}), hpServerStep2},
		{"update", AppendSyncUpdate(AppendHocuspocusName(nil, "notes/42"), unhex(t, "01012a000401017402686900")), hpProviderUpdate},
		{"stateless", AppendHocuspocusStateless(nil, "notes/42", []byte(`{"x":1}`)), hpProviderStateless},
		{"ping", AppendHocuspocusPing(nil), "09"},
	} {
		if hex.EncodeToString(tc.got) != tc.want {
			t.Errorf("%s: % x, want %s", tc.what, tc.got, tc.want)
		}
	}
}

func TestDecodeHocuspocusRejects(t *testing.T) {
	name := unhex(t, "086e6f7465732f3432")
	with := func(b ...byte) []byte { return append(append([]byte{}, name...), b...) }
	for _, tc := range []struct {
		what  string
		frame []byte
		kind  error
	}{
		{"empty", nil, ErrTruncated},
		{"name longer than the frame", []byte{9, 'a'}, ErrTruncated},
		{"name not UTF-8", []byte{1, 0xff, 3}, ErrMalformed},
		{"no type", name, ErrTruncated},
		{"sync status (server only)", with(8, 1), ErrUnknownMessageType},
		{"sync reply (server internal)", with(4), ErrUnknownMessageType},
		{"broadcast stateless (server internal)", with(6, 0), ErrUnknownMessageType},
		{"permission denied from a client", with(2, 1, 0), ErrUnknownMessageType},
		{"sync sub-type 3", with(0, 3, 0), ErrUnknownMessageType},
		{"update longer than the frame", with(0, 2, 5, 0), ErrTruncated},
		{"trailing bytes after close", with(7, 0), ErrMalformed},
		{"trailing bytes after the version", with(2, 0, 0, 0, 0), ErrMalformed},
	} {
		_, err := DecodeHocuspocus(tc.frame)
		if !errors.Is(err, tc.kind) {
			t.Errorf("%s: %v, want %v", tc.what, err, tc.kind)
		}
		checkError(t, err, len(tc.frame))
	}
}

func FuzzDecodeHocuspocus(f *testing.F) {
	for _, s := range []string{hpProviderAuth, hpProviderStep1, hpProviderAwareness, hpProviderUpdate,
		hpProviderStateless, hpProviderLeave, hpProviderClose, "09", "0a"} {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		m, err := DecodeHocuspocus(frame)
		if err != nil {
			checkError(t, err, len(frame))
			return
		}
		// What decodes has the kind its first bytes say, when they say it (Kind reads
		// one-byte types only: lib0 writes no other, and metrics need no more).
		if typ, sync, ok := HocuspocusKind(frame); ok && (typ != m.Type || typ == HocuspocusSync && sync != m.Sync) {
			t.Fatalf("HocuspocusKind(% x) = %d %d %v, decoded %+v", frame, typ, sync, ok, m)
		}
	})
}
