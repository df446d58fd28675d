#!/usr/bin/env bash
# Runs the example: builds the editor bundle (examples/app -> examples/site/dist)
# when it is missing or older than its sources, then runs Caddy with
# examples/Caddyfile from this checkout. Rooms: ws://localhost:8080/rooms/<room>,
# files in ./data; the editor: http://localhost:8080/ and https://localhost:8443/.
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=examples/site/dist/bundle.js
if [ ! -f "$bundle" ] || [ -n "$(find examples/app/src examples/app/package.json -newer "$bundle" 2>/dev/null | head -1)" ]; then
	npm --prefix examples/app ci --no-audit --no-fund --loglevel=error
	npm --prefix examples/app run build
fi
# Built, then exec'd, rather than `go run`: go run does not pass SIGTERM on, so
# stopping this script's process would leave Caddy running without a parent.
go build -o .bin/caddy ./cmd/caddy
exec .bin/caddy run --config examples/Caddyfile
