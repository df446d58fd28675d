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

echo "== go test -race"
go test -race -count=1 ./...

echo "== node: install test clients (yjs, y-websocket, ws)"
(cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
echo "== node: end-to-end tests"
(cd tests/node && node --test --test-concurrency=1 test/)

echo "== python: install WireDB's clients (wiredb, wire-websocket, wire-file, pycrdt)"
python3 -m venv tests/python/.venv
tests/python/.venv/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
echo "== python: end-to-end tests"
tests/python/.venv/bin/python -m pytest -q tests/python
