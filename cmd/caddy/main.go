// Command caddy is Caddy with the standard modules and WireDB, for local
// runs: go run ./cmd/caddy run --config examples/Caddyfile
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-wiredb/wiredb"
)

func main() {
	caddycmd.Main()
}
