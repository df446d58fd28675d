// Package wiredb is WireDB for Caddy: a Caddy v2 module that serves
// y-websocket rooms, with every update stored in WireDB's file format.
//
// Importing this package registers everything:
//
//	xcaddy build --with github.com/caddy-wiredb/wiredb
//
// registers the http.handlers.wiredb module and the `wiredb` Caddyfile
// directive.
package wiredb

import (
	_ "github.com/caddy-wiredb/wiredb/caddyfile"
	_ "github.com/caddy-wiredb/wiredb/caddymodule"
)
