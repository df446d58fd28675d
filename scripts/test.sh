#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs what the tests
# need (Go modules, the npm test clients, the Python test clients), then runs
# the Go tests with -race and the end-to-end suites against a Caddy binary
# built from this checkout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

echo "== go: download modules, vet, build .bin/caddy"
go mod download
test -z "$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './tests/*'))" || {
	echo "gofmt would change:"; gofmt -l .; exit 1; }
go vet ./...
mkdir -p .bin
go build -o .bin/caddy ./cmd/caddy
export WIREDB_CADDY_BIN="$root/.bin/caddy"

# ---- Redis for the cluster-mode tests (Go, tests/node/test/cluster.test.mjs,
# ---- tests/python/test_cluster.py). Each suite starts its own redis-server on a free
# ---- 127.0.0.1 port and stops it again: no system Redis service is started here.
echo "== redis: redis-server for the cluster tests"
if [ -z "${WIREDB_REDIS_SERVER:-}" ] && ! command -v redis-server >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ]; then
		echo "redis-server is missing: installing Debian's package"
		# the package must not start a system Redis: deny service starts while it installs
		# (policy-rc.d exit 101), unless a policy is already in place
		own_policy=
		if [ ! -e /usr/sbin/policy-rc.d ]; then
			printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && own_policy=1
		fi
		installed=1
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server; } || installed=
		if [ -n "$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
		[ -n "$installed" ] || { echo "installing redis-server failed" >&2; exit 1; }
	else
		echo "The cluster tests need redis-server and this is not root, so it cannot install it." >&2
		echo "Install it with:  sudo apt-get update && sudo apt-get install -y redis-server" >&2
		echo "or point WIREDB_REDIS_SERVER at a redis-server binary." >&2
		exit 1
	fi
fi
export WIREDB_REDIS_SERVER="${WIREDB_REDIS_SERVER:-$(command -v redis-server)}"
test -x "$WIREDB_REDIS_SERVER" || { echo "WIREDB_REDIS_SERVER=$WIREDB_REDIS_SERVER is not an executable" >&2; exit 1; }
# the cluster tests fail instead of skipping when Redis is missing
export WIREDB_REQUIRE_REDIS=1
"$WIREDB_REDIS_SERVER" --version

echo "== go test -race"
go test -race -count=1 ./...

echo "== python: install WireDB's clients (wiredb, wire-websocket, wire-file, pycrdt)"
python3 -m venv tests/python/.venv
tests/python/.venv/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
# the Node suite drives a Python client too (tests/node/test/hocuspocus-python.test.mjs)
export WIREDB_REQUIRE_PYTHON=1

echo "== node: install test clients (yjs, y-websocket, @hocuspocus/provider, ws)"
(cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
echo "== node: end-to-end tests"
(cd tests/node && node --test --test-concurrency=1 test/)

echo "== python: end-to-end tests"
tests/python/.venv/bin/python -m pytest -q tests/python

echo "== bench: build the load tool and smoke-run every scenario against .bin/caddy"
bash bench/smoke.sh

# ---- Browser demos: the editor in examples/app (y-websocket), the rich-text
# ---- editor in examples/tiptap (Hocuspocus provider) and their end-to-end
# ---- tests in tests/browser (headless Debian Chromium through playwright-core).
echo "== browser: Chromium"
if [ -z "${WIREDB_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
	if [ "$(id -u)" = 0 ]; then
		echo "chromium is missing: installing Debian's package"
		apt-get update -q
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
	else
		echo "The browser test needs Chromium and this is not root, so it cannot install it." >&2
		echo "Install it with:  sudo apt-get update && sudo apt-get install -y chromium" >&2
		echo "or point WIREDB_CHROMIUM at a Chromium or Chrome binary." >&2
		exit 1
	fi
fi
echo "== browser: build the editor bundle (examples/app -> examples/site/dist/bundle.js)"
npm --prefix examples/app ci --no-audit --no-fund --loglevel=error
npm --prefix examples/app run build
echo "== browser: build the Tiptap demo bundle (examples/tiptap -> examples/site/tiptap/dist/bundle.js)"
npm --prefix examples/tiptap ci --no-audit --no-fund --loglevel=error
npm --prefix examples/tiptap run build
echo "== browser: install playwright-core, end-to-end test"
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
(cd tests/browser && node --test --test-concurrency=1 test/)
