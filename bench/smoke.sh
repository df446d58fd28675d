#!/usr/bin/env bash
# CI's check of the load tool: build it, generate a small data set, start the
# Caddy binary built from this checkout on a free 127.0.0.1 port, and run
# every scenario tiny (wiredb-bench -smoke). Not a benchmark: bench/run.sh is.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
caddy_bin=${WIREDB_CADDY_BIN:-$root/.bin/caddy}
tmp=$(mktemp -d)
caddy_pid=""
cleanup() {
	if [ -n "$caddy_pid" ]; then kill "$caddy_pid" 2>/dev/null || true; wait "$caddy_pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/wiredb-bench" ./cmd/wiredb-bench
(cd bench/gen && npm ci --no-audit --no-fund --loglevel=error && node gen.mjs --small --out "$tmp/data")

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$tmp/Caddyfile" <<CADDY
{
	admin off
	auto_https off
	persist_config off
}
http://127.0.0.1:$port {
	bind 127.0.0.1
	wiredb /rooms/* {
		data_dir $tmp/rooms
	}
}
CADDY
"$caddy_bin" run --config "$tmp/Caddyfile" >"$tmp/caddy.log" 2>&1 &
caddy_pid=$!
for _ in $(seq 100); do
	(echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	sleep 0.1
done
timeout 120 "$tmp/wiredb-bench" -smoke -url "ws://127.0.0.1:$port/rooms" -data "$tmp/data" -pid "$caddy_pid" ||
	{ echo "smoke failed; server log:"; tail -n 50 "$tmp/caddy.log"; exit 1; }
