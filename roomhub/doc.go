// Package roomhub runs y-websocket rooms: it keeps each room's document as
// bytes (a merged snapshot plus the tail of updates accepted since), greets
// joining clients, answers sync step 1 with a diff, validates, stores and
// relays updates, and relays awareness.
//
// A Hub is safe for concurrent use. It imports nothing from Caddy: the
// caddymodule package is an adapter around it.
package roomhub
