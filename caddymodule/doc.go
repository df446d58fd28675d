// Package caddymodule is the Caddy adapter around roomhub: the HTTP handler
// module http.handlers.wiredb. It turns configuration into hub options,
// shares one hub per data directory through a caddy.UsagePool (so that a
// config reload keeps rooms and connections), picks the room key of a
// request, and upgrades it to a WebSocket.
package caddymodule
