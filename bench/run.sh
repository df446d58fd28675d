#!/usr/bin/env bash
# Side-by-side benchmark: wiredb (our Caddy, fsync default and never; also driven in the
# Hocuspocus protocol: wiredb-hocuspocus), the reference
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
#   SERVERS="wiredb wiredb-cluster" ROUNDS=2 bench/run.sh     (or CLUSTER=1 bench/run.sh)
#                                cluster mode side by side with one instance: wiredb-cluster
#                                is CLUSTER_INSTANCES (3) Caddys sharing one data directory and
#                                one redis-server (appendfsync REDIS_APPENDFSYNC, everysec);
#                                each room's clients are spread over the instances.
#                                wiredb-cluster-always: the same with appendfsync always;
#                                wiredb-cluster1: one instance in cluster mode (what the log
#                                costs without crossing instances). PPROF=1 turns on each
#                                Caddy's admin endpoint and saves CPU profiles of the max-rate
#                                scenarios in the logs directory.
#   SERVERS="wiredb-hocuspocus hocuspocus wiredb" ROUNDS=2 bench/run.sh   (or HOCUSPOCUS=1 bench/run.sh)
#                                our Caddy (wiredb's Caddyfile) driven in the Hocuspocus protocol
#                                (wiredb-bench -protocol hocuspocus: every client dials
#                                ws://.../rooms, as a provider does, and names its room as the
#                                document) side by side with Hocuspocus itself and with wiredb
#                                in y-websocket; the report adds the ratios
#                                wiredb-hocuspocus / hocuspocus and wiredb-hocuspocus / wiredb.
#   ONLY="maxrate fanout-1x10" ...   only these scenarios
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
CLUSTER=${CLUSTER:-0}
HOCUSPOCUS=${HOCUSPOCUS:-0}
if [[ "$CLUSTER" == 1 ]]; then
	SERVERS=${SERVERS:-"wiredb wiredb-cluster"}
fi
if [[ "$HOCUSPOCUS" == 1 ]]; then
	SERVERS=${SERVERS:-"wiredb-hocuspocus hocuspocus wiredb"}
fi
SERVERS=${SERVERS:-"ywebsocket hocuspocus wiredb wiredb-fsync-never barerelay"}
CLUSTER_INSTANCES=${CLUSTER_INSTANCES:-3}
REDIS_APPENDFSYNC=${REDIS_APPENDFSYNC:-everysec}
PPROF=${PPROF:-0}
ONLY=${ONLY:-} # e.g. ONLY="maxrate maxrate-w1024": run only these scenarios
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
# A server is one process or, for wiredb-cluster*, several Caddys and a redis-server:
# server_pids/server_ports list every instance; server_pid/server_port are the first.
server_pid=""
server_port=""
server_pids=()
server_ports=()
admin_ports=()
server_proto=""
server_data=""
redis_pid=""
redis_port=""
redis_dir=""

. "$(dirname "$0")/lib.sh" # free_port, wait_port, wait_ready

# room_idle_timeout is short so that the run can measure a join from disk in a warm
# process (a room unloads that long after its last client left); rooms with clients, as in
# every other scenario, never unload.
caddyfile() { # port data_dir extra_lines [admin_port]
	local admin="admin off"
	[[ -n "${4:-}" ]] && admin="admin 127.0.0.1:$4"
	cat <<EOF
{
	$admin
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

# start_redis APPENDFSYNC: a redis-server for a cluster, on a free port, in a fresh directory
start_redis() {
	redis_port=$(free_port)
	redis_dir="$work/redis-$RANDOM"
	mkdir -p "$redis_dir"
	local logf="$out/$cur_server.redis.log"
	echo "===== start $(date -u +%FT%TZ) port $redis_port appendfsync $1" >> "$logf"
	(cd "$redis_dir" && exec redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$redis_dir" \
		--appendonly yes --appendfsync "$1" --save '' --daemonize no) >> "$logf" 2>&1 &
	redis_pid=$!
	if ! wait_port "$redis_port" 20 "$redis_pid"; then
		log "redis-server did not start; its log:"
		tail -20 "$logf" >&2
		return 1
	fi
}

# stop_pid PID: SIGTERM, 15 s for a graceful stop (Caddy flushes and compacts rooms), SIGKILL
stop_pid() {
	local pid=$1
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 150); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "pid $pid did not stop in 15 s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

# start_caddy NAME BIN EXTRA INDEX: one Caddy of a cluster on a free port (and, with
# PPROF=1, its admin endpoint on another); appends to server_pids, server_ports, admin_ports
start_caddy() {
	local name=$1 bin=$2 extra=$3 i=$4 port admin=""
	port=$(free_port)
	[[ "$PPROF" == 1 ]] && admin=$(free_port)
	local logf="$out/$name.$i.log"
	echo "===== start $(date -u +%FT%TZ) port $port admin ${admin:-off}" >> "$logf"
	caddyfile "$port" "$server_data" "$extra" "$admin" > "$work/$name.$i.Caddyfile"
	HOME="$work/home" XDG_DATA_HOME="$work/home/data" XDG_CONFIG_HOME="$work/home/config" \
		"$bin" run --config "$work/$name.$i.Caddyfile" --adapter caddyfile >> "$logf" 2>&1 &
	server_pids+=($!)
	server_ports+=("$port")
	admin_ports+=("$admin")
}

# start_server NAME [keep]: a fresh process on a free port (keep: same data directory and,
# for a cluster, the same redis-server: the shared log outlives the instances)
start_server() {
	local name=$1 keep=${2:-}
	server_port=$(free_port)
	server_proto=y-websocket
	server_pids=()
	server_ports=()
	admin_ports=()
	local logf="$out/$name.log"
	case "$name" in
	wiredb-cluster*) logf="$out/$name.0.log" ;;
	*) echo "===== start $(date -u +%FT%TZ) port $server_port" >> "$logf" ;;
	esac
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
	wiredb | wiredb-fsync-never | wiredb-baseline | wiredb-hocuspocus)
		# wiredb-hocuspocus: the same Caddy and Caddyfile (the route speaks both protocols by
		# default), the load tool in the Hocuspocus protocol
		[[ "$name" == wiredb-hocuspocus ]] && server_proto=hocuspocus
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
		local admin=""
		[[ "$PPROF" == 1 ]] && admin=$(free_port) && admin_ports=("$admin")
		caddyfile "$server_port" "$server_data" "$fsync" "$admin" > "$work/$name.Caddyfile"
		HOME="$work/home" XDG_DATA_HOME="$work/home/data" XDG_CONFIG_HOME="$work/home/config" \
			"$bin" run --config "$work/$name.Caddyfile" --adapter caddyfile >> "$logf" 2>&1 &
		server_pid=$!
		;;
	wiredb-cluster | wiredb-cluster-always | wiredb-cluster1)
		# n Caddys, one data directory, one redis-server
		local n=$CLUSTER_INSTANCES afs=$REDIS_APPENDFSYNC i extra
		[[ "$name" == wiredb-cluster1 ]] && n=1
		[[ "$name" == wiredb-cluster-always ]] && afs=always
		if [[ -z "$keep" ]]; then
			server_data="$work/$name-data-$RANDOM"
			mkdir -p "$server_data"
			start_redis "$afs" || return 1
		fi
		extra=$(printf 'cluster redis {\n\t\t\turl redis://127.0.0.1:%s/0\n\t\t}' "$redis_port")
		for ((i = 0; i < n; i++)); do
			start_caddy "$name" .bin/caddy "$extra" "$i"
		done
		server_pid=${server_pids[0]}
		server_port=${server_ports[0]}
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
	if ((${#server_pids[@]} == 0)); then
		server_pids=("$server_pid")
		server_ports=("$server_port")
	fi
	local k
	for k in "${!server_pids[@]}"; do
		if ! wait_port "${server_ports[k]}" 20 "${server_pids[k]}"; then
			log "$name (instance $k) did not start; its log:"
			tail -20 "$logf" >&2
			stop_server
			return 1
		fi
	done
	if [[ "$name" == wiredb-cluster* ]]; then
		local t0=$SECONDS
		for k in "${!server_ports[@]}"; do
			if ! wait_ready "${server_ports[k]}" 20; then
				log "$name (instance $k) still answers 503 after 20 s; its log:"
				tail -20 "$out/$name.$k.log" >&2
				stop_server
				return 1
			fi
		done
		echo "===== ready after $((SECONDS - t0)) s more" >> "$logf"
	fi
}

# stop_server [keep]: stops every process of the server, the redis-server too unless keep
stop_server() {
	local keep=${1:-} pid
	for pid in "${server_pids[@]}"; do
		stop_pid "$pid"
	done
	server_pid=""
	server_pids=()
	if [[ -z "$keep" && -n "$redis_pid" ]]; then
		stop_pid "$redis_pid"
		redis_pid=""
	fi
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

if [[ " $SERVERS " == *" wiredb-cluster"* ]] && ! command -v redis-server >/dev/null; then
	echo "wiredb-cluster needs redis-server (e.g. Debian's redis-server package)" >&2
	exit 2
fi

log "building .bin/caddy, .bin/wiredb-bench, .bin/barerelay"
mkdir -p .bin
go build -o .bin/caddy ./cmd/caddy
go build -o .bin/wiredb-bench ./cmd/wiredb-bench
go build -o .bin/barerelay ./bench/barerelay

# --- scenarios -------------------------------------------------------------------------------
# bench NAME TIMEOUT_S ARGS...: one tool run; its JSON line, tagged, goes to the jsonl
# (a cluster: every instance's URL and PID, and its redis-server)
bench() {
	local name=$1 limit=$2
	shift 2
	if [[ -n "$ONLY" && " $ONLY " != *" $name "* ]]; then return 0; fi
	local line rc=0 urls="" pids="" p
	for p in "${server_ports[@]}"; do urls+="${urls:+,}ws://127.0.0.1:$p/rooms"; done
	pids=$(IFS=,; echo "${server_pids[*]}")
	local extra=()
	[[ -n "$redis_pid" ]] && extra=(-redis "redis://127.0.0.1:$redis_port/0" -redis-pid "$redis_pid")
	local profs=()
	if [[ "$PPROF" == 1 && "$name" == maxrate* ]]; then
		# CPU profiles of every Caddy over the middle of the run, in the logs directory
		local k secs
		secs=$(( ${MAX_DURATION%s} > 4 ? ${MAX_DURATION%s} - 2 : 2 ))
		for k in "${!admin_ports[@]}"; do
			[[ -z "${admin_ports[k]}" ]] && continue
			(sleep 1.5; timeout 60 curl -s -o "$out/r$round-$cur_server-$name.$k.pprof" \
				"http://127.0.0.1:${admin_ports[k]}/debug/pprof/profile?seconds=$secs") &
			profs+=($!)
		done
	fi
	line=$(timeout --kill-after=10 "$limit" .bin/wiredb-bench "$@" \
		-protocol "$server_proto" -url "$urls" -data bench/data "${extra[@]}" \
		-pid "$pids" -label "$cur_server" -timeout "$((limit - 5))s" 2>>"$out/$cur_server.bench.log") || rc=$?
	for p in "${profs[@]}"; do wait "$p" || true; done
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
		# a room of 10,000 updates: loaded, then joined. A cluster loads it through its
		# first instance and the first join is on an instance that never had the room (it
		# reads the shared checkpoint and the log after it); one instance has it in memory
		# (in 4 rooms: a first join is one sample per room)
		bench coldsync-10k 240 coldsync -doc doc20k -limit 10000 -joins 3 -repeat 4 -room "$p-10k"
		# from disk in a warm process: the rooms above unload once their clients are gone
		sleep 4
		bench unloaded-doc20k 120 coldsync -doc doc20k -join-only -joins "$JOINS" -room "$p-doc20k"
		bench unloaded-fragmented 120 coldsync -doc fragmented -join-only -joins "$JOINS" -room "$p-frag"
		bench unloaded-10k 120 coldsync -doc doc20k -limit 10000 -join-only -joins 3 -repeat 4 -room "$p-10k"
		# from disk: restart on the same data directory (a cluster: every instance; the
		# redis-server stays); a room loads on its first join
		stop_server keep
		start_server "$cur_server" keep
		bench disk-doc20k 120 coldsync -doc doc20k -join-only -joins "$JOINS" -room "$p-doc20k"
		bench disk-fragmented 120 coldsync -doc fragmented -join-only -joins "$JOINS" -room "$p-frag"
		bench disk-10k 120 coldsync -doc doc20k -limit 10000 -join-only -joins 3 -repeat 4 -room "$p-10k"
	fi
}

# server_log_counts MARK: a JSON line with the counts of the cluster instances' log lines
# (after the first MARK lines of all of them together, i.e. this round's) that say they lost
# the Redis subscription, closed a room that could not follow the log, or refused a join
server_log_counts() {
	local new
	new=$( (cat "$out/$cur_server".[0-9]*.log 2>/dev/null || true) | tail -n +"$(($1 + 1))")
	local lost closed
	lost=$(grep -c 'subscription to Redis lost' <<< "$new" || true)
	closed=$(grep -c 'closing room: it cannot follow' <<< "$new" || true)
	printf '{"bench":"server-log","server":"%s","round":%d,"ok":true,"subscription_lost":%d,"rooms_closed":%d}\n' \
		"$cur_server" "$round" "$lost" "$closed" >> "$jsonl"
	if ((lost + closed > 0)); then
		log "  $cur_server logged $lost lost Redis subscriptions and $closed rooms closed for falling behind the log"
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
		log_mark=$( (cat "$out/$cur_server".[0-9]*.log 2>/dev/null || true) | wc -l)
		if ! start_server "$cur_server"; then
			printf '{"bench":"start","server":"%s","round":%d,"ok":false,"error":"did not start"}\n' "$cur_server" "$round" >> "$jsonl"
			continue
		fi
		run_scenarios
		stop_server
		if [[ "$cur_server" == wiredb-cluster* ]]; then
			# what the instances logged this round about their hold on the shared log
			server_log_counts "$log_mark"
		fi
	done
done
log "done in $((SECONDS - t_start)) s"

node bench/report.mjs "$jsonl" "$stamp" "QUICK=$QUICK ROUNDS=$ROUNDS" > "$report"
cat "$report"
log "results: $report ($jsonl, logs in $out/)"
