#!/usr/bin/env bash
# Side-by-side benchmark: wiredb (our Caddy, fsync default and never), the reference
# y-websocket server (@y/websocket-server 0.1.5), Hocuspocus (@hocuspocus/server 4.x, no
# extensions, in memory) and a bare relay (bench/barerelay: the physical limit), driven
# by cmd/wiredb-bench with real Yjs updates from bench/gen.
#
#   bench/run.sh                 full run (~10 minutes; first run +1 minute for the data)
#   QUICK=1 bench/run.sh         short scenarios (~2 minutes)
#   SERVERS="wiredb ywebsocket" ROUNDS=3 bench/run.sh
#   BASELINE_CADDY=/tmp/caddy-old SERVERS="wiredb-baseline wiredb" bench/run.sh
#                                an A/B: wiredb-baseline runs that binary (e.g. built from the
#                                commit before a change) with wiredb's settings
#
# Rounds alternate the servers, in the listed order and then reversed (A B C D E, then
# E D C B A, ...), so that no server always runs right after the same other one (a fixed
# order made wiredb `fsync never`, always run right after wiredb, look 5-15% slower than
# wiredb, while a direct A/B measured it 4-7% faster). Each round starts
# every server afresh (new process, new data directory) and runs every scenario on it. Results:
# bench/results/<time>.md (the table), <time>.jsonl (every measurement), <time>/ (logs).
#
# Everything listens on and connects to 127.0.0.1 only; every server is started by this
# script and stopped by its PID; every step is bounded in time.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

QUICK=${QUICK:-0}
ROUNDS=${ROUNDS:-2}
SERVERS=${SERVERS:-"ywebsocket hocuspocus wiredb wiredb-fsync-never barerelay"}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
results_dir="$root/bench/results"
out="$results_dir/$stamp"
jsonl="$results_dir/$stamp.jsonl"
report="$results_dir/$stamp.md"
mkdir -p "$out"
: > "$jsonl"
work=$(mktemp -d /tmp/wiredb-bench.XXXXXX)

if [[ "$QUICK" == 1 ]]; then
	IDLE_CONNS=2000 IDLE_HOLD=1s
	FAN_DURATION=2s MAX_DURATION=2s JOINS=3
else
	IDLE_CONNS=2000 IDLE_HOLD=10s
	FAN_DURATION=15s MAX_DURATION=10s JOINS=5
fi

IDLE_UNLOAD=2s

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# --- servers: started here, stopped by PID -----------------------------------------------
server_pid=""
server_port=""
server_proto=""
server_data=""

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_port() { # port timeout_s
	local deadline=$((SECONDS + $2))
	while ((SECONDS < deadline)); do
		if ! kill -0 "$server_pid" 2>/dev/null; then return 1; fi
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	return 1
}

# room_idle_timeout is short so that the run can measure a join from disk in a warm
# process (a room unloads that long after its last client left); rooms with clients, as in
# every other scenario, never unload.
caddyfile() { # port data_dir fsync_line
	cat <<EOF
{
	admin off
	auto_https off
	persist_config off
}

http://127.0.0.1:$1 {
	bind 127.0.0.1
	wiredb /rooms/* {
		data_dir $2
		room_idle_timeout $IDLE_UNLOAD
		$3
	}
}
EOF
}

# start_server NAME [keep]: a fresh process on a free port (keep: same data directory)
start_server() {
	local name=$1 keep=${2:-}
	server_port=$(free_port)
	server_proto=y-websocket
	local logf="$out/$name.log"
	echo "===== start $(date -u +%FT%TZ) port $server_port" >> "$logf"
	case "$name" in
	ywebsocket)
		PORT=$server_port node bench/servers/ywebsocket/server.mjs >> "$logf" 2>&1 &
		server_pid=$!
		;;
	hocuspocus)
		server_proto=hocuspocus
		PORT=$server_port node bench/servers/hocuspocus/server.mjs >> "$logf" 2>&1 &
		server_pid=$!
		;;
	wiredb | wiredb-fsync-never | wiredb-baseline)
		local bin=.bin/caddy
		if [[ "$name" == wiredb-baseline ]]; then
			bin=${BASELINE_CADDY:?wiredb-baseline needs BASELINE_CADDY=<a Caddy binary built from the baseline commit>}
		fi
		if [[ -z "$keep" ]]; then
			server_data="$work/$name-data-$RANDOM"
			mkdir -p "$server_data"
		fi
		local fsync=""
		[[ "$name" == wiredb-fsync-never ]] && fsync="fsync never"
		caddyfile "$server_port" "$server_data" "$fsync" > "$work/$name.Caddyfile"
		HOME="$work/home" XDG_DATA_HOME="$work/home/data" XDG_CONFIG_HOME="$work/home/config" \
			"$bin" run --config "$work/$name.Caddyfile" --adapter caddyfile >> "$logf" 2>&1 &
		server_pid=$!
		;;
	barerelay)
		.bin/barerelay -addr "127.0.0.1:$server_port" >> "$logf" 2>&1 &
		server_pid=$!
		;;
	*)
		echo "unknown server $name" >&2
		exit 2
		;;
	esac
	if ! wait_port "$server_port" 20; then
		log "$name did not start; its log:"
		tail -20 "$logf" >&2
		stop_server
		return 1
	fi
}

stop_server() {
	[[ -z "$server_pid" ]] && return 0
	local pid=$server_pid
	server_pid=""
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 150); do # 15 s for a graceful stop (Caddy flushes and compacts rooms)
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "pid $pid did not stop in 15 s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	stop_server
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- what the run needs ------------------------------------------------------------------
npm_ci() { # dir: npm ci unless node_modules matches the lock file already
	local dir=$1
	if [[ -f "$dir/node_modules/.bench-lock" ]] && cmp -s "$dir/package-lock.json" "$dir/node_modules/.bench-lock"; then
		return 0
	fi
	log "npm ci in $dir"
	(cd "$dir" && timeout 300 npm ci --no-audit --no-fund --loglevel=error) >&2
	cp "$dir/package-lock.json" "$dir/node_modules/.bench-lock"
}
npm_ci bench/gen
npm_ci bench/servers/ywebsocket
npm_ci bench/servers/hocuspocus

log "bench data (bench/data; generated once, ~1 minute)"
timeout 600 node bench/gen/gen.mjs --out bench/data --if-stale >&2

log "building .bin/caddy, .bin/wiredb-bench, .bin/barerelay"
mkdir -p .bin
go build -o .bin/caddy ./cmd/caddy
go build -o .bin/wiredb-bench ./cmd/wiredb-bench
go build -o .bin/barerelay ./bench/barerelay

# --- scenarios -------------------------------------------------------------------------------
# bench NAME TIMEOUT_S ARGS...: one tool run; its JSON line, tagged, goes to the jsonl
bench() {
	local name=$1 limit=$2
	shift 2
	local line rc=0
	line=$(timeout --kill-after=10 "$limit" .bin/wiredb-bench "$@" \
		-protocol "$server_proto" -url "ws://127.0.0.1:$server_port/rooms" -data bench/data \
		-pid "$server_pid" -label "$cur_server" -timeout "$((limit - 5))s" 2>>"$out/$cur_server.bench.log") || rc=$?
	if [[ -z "$line" ]]; then
		line="{\"scenario\":\"$name\",\"ok\":false,\"error\":\"wiredb-bench exited $rc without a result (see $cur_server.bench.log)\"}"
	fi
	printf '%s\n' "$line" | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
d["bench"] = sys.argv[1]; d["server"] = sys.argv[2]; d["round"] = int(sys.argv[3])
print(json.dumps(d))' "$name" "$cur_server" "$round" >> "$jsonl"
	local ok
	ok=$(printf '%s' "$line" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("ok" if d.get("ok") else "FAILED: " + str(d.get("error")))')
	log "  $cur_server $name: $ok"
}

run_scenarios() {
	local p="r$round-$cur_server"
	# idle first, on a fresh server: its RSS is then the baseline
	bench idle 120 idle -conns "$IDLE_CONNS" -rooms 100 -hold "$IDLE_HOLD" -room-prefix "$p-idle"
	bench fanout-1x10 90 fanout -rooms 1 -clients 10 -writers 10 -rate 20 -duration "$FAN_DURATION" -room-prefix "$p-f1"
	bench fanout-100x5 120 fanout -rooms 100 -clients 5 -writers 2 -rate 10 -duration "$FAN_DURATION" -room-prefix "$p-f100"
	# The writers are paced by what the receiver has seen: with 64 updates in flight per
	# writer a fast server is bound by the round trip, not by its CPU; with 1,024 every
	# server here saturates the machine (server and load tool share its 2 cores).
	bench maxrate 90 maxrate -writers 4 -receivers 1 -window 64 -duration "$MAX_DURATION" -room-prefix "$p-max"
	bench maxrate-w1024 90 maxrate -writers 4 -receivers 1 -window 1024 -duration "$MAX_DURATION" -room-prefix "$p-maxw"
	if [[ "$cur_server" != barerelay ]]; then # the bare relay keeps no document
		bench coldsync-doc20k 240 coldsync -doc doc20k -joins "$JOINS" -room "$p-doc20k"
		bench coldsync-fragmented 240 coldsync -doc fragmented -joins "$JOINS" -room "$p-frag"
	fi
	if [[ "$cur_server" == wiredb* ]]; then
		# from disk in a warm process: the rooms above unload once their clients are gone
		sleep 4
		bench unloaded-doc20k 120 coldsync -doc doc20k -join-only -joins "$JOINS" -room "$p-doc20k"
		bench unloaded-fragmented 120 coldsync -doc fragmented -join-only -joins "$JOINS" -room "$p-frag"
		# from disk: restart on the same data directory; a room loads on its first join
		stop_server
		start_server "$cur_server" keep
		bench disk-doc20k 120 coldsync -doc doc20k -join-only -joins "$JOINS" -room "$p-doc20k"
		bench disk-fragmented 120 coldsync -doc fragmented -join-only -joins "$JOINS" -room "$p-frag"
	fi
}

t_start=$SECONDS
read -r -a forward <<< "$SERVERS"
backward=()
for ((i = ${#forward[@]} - 1; i >= 0; i--)); do backward+=("${forward[i]}"); done
for round in $(seq 1 "$ROUNDS"); do
	order=("${forward[@]}")
	if ((round % 2 == 0)); then order=("${backward[@]}"); fi
	for cur_server in "${order[@]}"; do
		log "round $round/$ROUNDS: $cur_server"
		if ! start_server "$cur_server"; then
			printf '{"bench":"start","server":"%s","round":%d,"ok":false,"error":"did not start"}\n' "$cur_server" "$round" >> "$jsonl"
			continue
		fi
		run_scenarios
		stop_server
	done
done
log "done in $((SECONDS - t_start)) s"

node bench/report.mjs "$jsonl" "$stamp" "QUICK=$QUICK ROUNDS=$ROUNDS" > "$report"
cat "$report"
log "results: $report ($jsonl, logs in $out/)"
