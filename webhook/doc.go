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
// Ordering: one webhook receives its events in the order they were queued
// (one worker, a delivery is retried before the next one starts). There is
// no order between webhooks, and none between a room's room.changed (queued
// when its debounce window ends) and its room.loaded / room.unloaded (queued
// at once): a receiver that cares should read the event's "time".
//
// A Dispatcher is safe for concurrent use. The package imports nothing from
// Caddy: the caddymodule package turns its Caddyfile into Configs.
package webhook
