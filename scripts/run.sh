#!/usr/bin/env bash
# Runs the example: builds the editor bundle (examples/app -> examples/site/dist)
# when it is missing or older than its sources, then runs Caddy with
# examples/Caddyfile from this checkout. Rooms: ws://localhost:8080/rooms/<room>,
# files in ./data; the editor: http://localhost:8080/ and https://localhost:8443/, the
# Tiptap editor (Hocuspocus provider) at /tiptap/ on both.
set -euo pipefail
cd "$(dirname "$0")/.."
# The CodeMirror editor (examples/app, y-websocket) and the Tiptap editor
# (examples/tiptap, Hocuspocus provider), each bundled into examples/site.
build_bundle() { # <app dir> <bundle>
	if [ ! -f "$2" ] || [ -n "$(find "$1/src" "$1/package.json" -newer "$2" 2>/dev/null | head -1)" ]; then
		npm --prefix "$1" ci --no-audit --no-fund --loglevel=error
		npm --prefix "$1" run build
	fi
}
build_bundle examples/app examples/site/dist/bundle.js
build_bundle examples/tiptap examples/site/tiptap/dist/bundle.js
# Built, then exec'd, rather than `go run`: go run does not pass SIGTERM on, so
# stopping this script's process would leave Caddy running without a parent.
go build -o .bin/caddy ./cmd/caddy
exec .bin/caddy run --config examples/Caddyfile
