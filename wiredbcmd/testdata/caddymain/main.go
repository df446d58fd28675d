// Command caddymain is Caddy with the standard modules and the wiredb command, for the
// tests of package wiredbcmd (the module's own cmd/caddy imports the root package only).
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-wiredb/wiredb/wiredbcmd"
)

func main() {
	caddycmd.Main()
}
