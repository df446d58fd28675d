package caddyfile

import (
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

func caddyconfigAdapt(input string) ([]byte, []caddyconfig.Warning, error) {
	return caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), map[string]any{"filename": "Caddyfile"})
}
