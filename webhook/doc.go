// Package webhook tells HTTP receivers about rooms: after a room changes,
// one signed room.changed POST per debounce window to each webhook URL, and
// room.loaded / room.unloaded when a webhook asks for them.
//
// Delivery is off the caller's path. Changed, Loaded and Unloaded only note
// the event and return; each webhook has its own bounded queue and a single
// worker goroutine that posts, retries with backoff, and gives up after a
// set number of attempts. A receiver that hangs delays its own webhook's
// queue and nothing else; when that queue is full, new events for it are
// dropped and counted.
//
// Each event is a POST to the webhook's URL with the headers
//
//	Content-Type: application/json
//	User-Agent: wiredb-webhook
//	X-WireDB-Event: room.changed
//	X-WireDB-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with the secret>
//
// and one of the bodies
//
//	{"event":"room.changed","room":"<key>","state_vector":"<base64>","updates":<n>,"time":"<RFC 3339 UTC>"}
//	{"event":"room.loaded","room":"<key>","time":"<RFC 3339 UTC>"}
//	{"event":"room.unloaded","room":"<key>","time":"<RFC 3339 UTC>"}
//
// where updates counts the room's updates in the debounce window,
// state_vector is the room's Yjs state vector when the window ended
// (standard base64, padded), and time is when the event was made (the
// window's end for room.changed), with milliseconds. A retry sends the same
// body and signature again, so a receiver can tell a repeat by them. A 2xx
// answer is a delivery; anything else, no answer within the timeout, or a
// redirect is a failed attempt, retried after 1s, 2s, 4s, ... (at most 30s)
// up to a set number of attempts. Receivers check the signature with Verify
// or its equivalent.
//
// Ordering: one webhook receives its events in the order they were queued
// (one worker, a delivery is retried before the next one starts). There is
// no order between webhooks, and none between a room's room.changed (queued
// when its debounce window ends) and its room.loaded / room.unloaded (queued
// at once): a receiver that cares should read the event's "time".
//
// A Dispatcher is safe for concurrent use. The package imports nothing from
// Caddy: the caddymodule package turns its Caddyfile into Configs.
package webhook
