# Helpers shared by bench/run.sh and bench/smoke.sh (sourced, not run).

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_port PORT TIMEOUT_S PID: until PORT accepts connections; fails at once if PID ends
wait_port() {
	local deadline=$((SECONDS + $2)) pid=$3
	while ((SECONDS < deadline)); do
		if ! kill -0 "$pid" 2>/dev/null; then return 1; fi
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	return 1
}

# wait_ready PORT TIMEOUT_S: a cluster instance refuses WebSocket upgrades with 503 until
# its subscription to Redis is in place. A bodiless upgrade request (no key) is answered
# 503 before that and 400 after; it opens no room.
wait_ready() {
	local deadline=$((SECONDS + $2)) code
	while ((SECONDS < deadline)); do
		code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' -H 'Connection: Upgrade' -H 'Upgrade: websocket' \
			"http://127.0.0.1:$1/rooms/ready-probe" || true)
		[[ "$code" != 503 && "$code" != 000 ]] && return 0
		sleep 0.05
	done
	return 1
}
