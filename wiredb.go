// Package wiredb is WireDB for Caddy: a Caddy v2 module that serves
// y-websocket rooms, with every update stored in WireDB's file format.
//
// Importing this package registers everything:
//
//	xcaddy build --with github.com/caddy-wiredb/wiredb
//
// registers the http.handlers.wiredb module, the admin.api.wiredb admin
// routes, the `wiredb` Caddyfile directive and the `caddy wiredb` commands.
package wiredb

import (
	_ "github.com/caddy-wiredb/wiredb/caddyfile"
	_ "github.com/caddy-wiredb/wiredb/caddymodule"
	_ "github.com/caddy-wiredb/wiredb/wiredbcmd"
)
