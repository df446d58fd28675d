package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"time"
)

// The wire format is written here and nowhere else.

// Request headers.
const (
	headerEvent     = "X-WireDB-Event"
	headerSignature = "X-WireDB-Signature"
	userAgent       = "wiredb-webhook"
)

// timeFormat is RFC 3339 in UTC with milliseconds: fixed width, so event
// times sort as strings, and fine enough to order a room's events.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

// Sign returns the X-WireDB-Signature of body: "sha256=" and the hex
// HMAC-SHA256 of body keyed with secret. A receiver recomputes it over the
// raw body it read, before decoding it, and compares in constant time
// (Verify).
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify reports whether signature, an X-WireDB-Signature header, is the
// signature of body under secret. It compares in constant time.
func Verify(secret string, body []byte, signature string) bool {
	return hmac.Equal([]byte(signature), []byte(Sign(secret, body)))
}

// changedBody is a room.changed body; the field order is the wire order.
type changedBody struct {
	Event string `json:"event"`
	Room  string `json:"room"`
	// StateVector is the room's Yjs state vector, base64 (std, padded);
	// empty when it could not be read (logged).
	StateVector string `json:"state_vector"`
	Updates     int    `json:"updates"`
	Time        string `json:"time"`
}

// lifecycleBody is a room.loaded or room.unloaded body.
type lifecycleBody struct {
	Event string `json:"event"`
	Room  string `json:"room"`
	Time  string `json:"time"`
}

// encodeChanged returns the body of a room.changed event at t.
func encodeChanged(room string, stateVector []byte, updates int, t time.Time) []byte {
	return mustMarshal(changedBody{
		Event:       EventRoomChanged,
		Room:        room,
		StateVector: base64.StdEncoding.EncodeToString(stateVector),
		Updates:     updates,
		Time:        t.UTC().Format(timeFormat),
	})
}

// encodeLifecycle returns the body of a room.loaded or room.unloaded event
// at t.
func encodeLifecycle(event, room string, t time.Time) []byte {
	return mustMarshal(lifecycleBody{Event: event, Room: room, Time: t.UTC().Format(timeFormat)})
}

// mustMarshal marshals v, which has only string and int fields: that cannot
// fail (invalid UTF-8 in a room key becomes U+FFFD).
func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("webhook: marshalling a body: " + err.Error())
	}
	return b
}
