#!/usr/bin/env bash
# CI's check of the load tool: build it, generate a small data set, start the
# Caddy binary built from this checkout on a free 127.0.0.1 port, and run
# every scenario tiny (wiredb-bench -smoke); then every scenario tiny again on
# the same Caddy in the Hocuspocus protocol (-protocol hocuspocus: the clients
# dial ws://.../rooms, as a provider does, and name their rooms as documents;
# WIREDB_BENCH_HOCUSPOCUS=0 skips it, e.g. for a binary from before it). Then
# the same against a cluster:
# three Caddys sharing one data directory and a redis-server (skipped, with a
# note, when redis-server is not installed; WIREDB_BENCH_CLUSTER=0 skips it,
# =1 fails without redis-server). Not a benchmark: bench/run.sh is.
# Every process is started here and stopped by its PID.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
caddy_bin=${WIREDB_CADDY_BIN:-$root/.bin/caddy}
cluster=${WIREDB_BENCH_CLUSTER:-auto}
hocuspocus=${WIREDB_BENCH_HOCUSPOCUS:-1}
tmp=$(mktemp -d)
pids=()
stop_all() { # the last started first: the Caddys before their redis-server
	local i pid
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		pid=${pids[i]}
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	pids=()
}
cleanup() {
	stop_all
	rm -rf "$tmp"
}
trap cleanup EXIT

. "$(dirname "$0")/lib.sh" # free_port, wait_port, wait_ready

# start_caddy NAME PORT DATA_DIR [EXTRA]: a Caddy on 127.0.0.1:PORT; its pid in $last_pid
start_caddy() {
	local name=$1 port=$2 data=$3 extra=${4:-}
	cat > "$tmp/$name.Caddyfile" <<CADDY
{
	admin off
	auto_https off
	persist_config off
}
http://127.0.0.1:$port {
	bind 127.0.0.1
	wiredb /rooms/* {
		data_dir $data
		$extra
	}
}
CADDY
	"$caddy_bin" run --config "$tmp/$name.Caddyfile" >"$tmp/$name.log" 2>&1 &
	last_pid=$!
	pids+=("$last_pid")
	wait_port "$port" 10 "$last_pid" || { echo "$name did not start:"; tail -n 20 "$tmp/$name.log"; exit 1; }
}

go build -o "$tmp/wiredb-bench" ./cmd/wiredb-bench
(cd bench/gen && npm ci --no-audit --no-fund --loglevel=error && node gen.mjs --small --out "$tmp/data")

port=$(free_port)
start_caddy caddy "$port" "$tmp/rooms"
timeout 120 "$tmp/wiredb-bench" -smoke -url "ws://127.0.0.1:$port/rooms" -data "$tmp/data" -pid "$last_pid" ||
	{ echo "smoke failed; server log:"; tail -n 50 "$tmp/caddy.log"; exit 1; }
if [[ "$hocuspocus" != 0 ]]; then
	# the same scenarios in Hocuspocus' protocol, on the same route (its own rooms)
	timeout 120 "$tmp/wiredb-bench" -smoke -protocol hocuspocus -url "ws://127.0.0.1:$port/rooms" \
		-data "$tmp/data" -pid "$last_pid" -room-prefix "hocuspocus-$(date +%s)" ||
		{ echo "hocuspocus smoke failed; server log:"; tail -n 50 "$tmp/caddy.log"; exit 1; }
fi
stop_all

# --- cluster: 3 instances, one data directory, one redis-server ---------------------------
if [[ "$cluster" == 0 ]]; then
	exit 0
fi
if ! command -v redis-server >/dev/null; then
	if [[ "$cluster" == 1 ]]; then
		echo "cluster smoke: redis-server is not installed" >&2
		exit 1
	fi
	echo "cluster smoke skipped: redis-server is not installed"
	exit 0
fi
rport=$(free_port)
mkdir -p "$tmp/redis"
(cd "$tmp/redis" && exec redis-server --port "$rport" --bind 127.0.0.1 --dir "$tmp/redis" \
	--appendonly yes --appendfsync everysec --save '' --daemonize no) >"$tmp/redis.log" 2>&1 &
rpid=$!
pids+=("$rpid")
wait_port "$rport" 10 "$rpid" || { echo "redis-server did not start:"; tail -n 20 "$tmp/redis.log"; exit 1; }
urls="" cpids=""
for i in 0 1 2; do
	p=$(free_port)
	start_caddy "cluster$i" "$p" "$tmp/cluster-rooms" "cluster redis {
			url redis://127.0.0.1:$rport/0
		}"
	wait_ready "$p" 10 || { echo "cluster$i still answers 503:"; tail -n 20 "$tmp/cluster$i.log"; exit 1; }
	urls+="${urls:+,}ws://127.0.0.1:$p/rooms"
	cpids+="${cpids:+,}$last_pid"
done
# each room's clients spread over the three; the cold-sync joins go to the instances
# that did not load the document
timeout 120 "$tmp/wiredb-bench" -smoke -url "$urls" -data "$tmp/data" -pid "$cpids" \
	-redis "redis://127.0.0.1:$rport/0" -redis-pid "$rpid" -room-prefix "cluster-$(date +%s)" || {
	echo "cluster smoke failed; server logs:"
	for i in 0 1 2; do echo "--- cluster$i"; tail -n 30 "$tmp/cluster$i.log"; done
	echo "--- redis"; tail -n 10 "$tmp/redis.log"
	exit 1
}
