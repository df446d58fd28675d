"""Starts the server under test.

WIREDB_SERVER=caddy (default): the Caddy binary at $WIREDB_CADDY_BIN (default
<repo>/.bin/caddy, built with `go build -o .bin/caddy ./cmd/caddy`), run as
`<bin> run --config <tmp>/Caddyfile --adapter caddyfile`.
WIREDB_SERVER=python: WireDB's own Python server (reference_server.py), to check the
tests themselves.

WIREDB_ROUTE_PREFIX (default "rooms"): rooms are served at /<prefix>/<key> by
`wiredb /<prefix>/* {...}`; set it to "" for `wiredb /* {...}` (rooms at /<key>).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_kind() -> str:
    kind = os.environ.get("WIREDB_SERVER", "caddy")
    if kind not in ("caddy", "python"):
        raise pytest.UsageError(f"WIREDB_SERVER must be caddy or python, not {kind!r}")
    return kind


def caddy_bin() -> Path:
    return Path(os.environ.get("WIREDB_CADDY_BIN") or REPO / ".bin" / "caddy")


class Server:
    """One server process on 127.0.0.1:<port>, storing rooms in <workdir>/data."""

    def __init__(self, workdir: Path, prefix: str | None = None, data_dir: Path | None = None,
                 wiredb_lines: list[str] | None = None) -> None:
        self.kind = server_kind()
        self.prefix = os.environ.get("WIREDB_ROUTE_PREFIX", "rooms") if prefix is None else prefix
        self.prefix = self.prefix.strip("/")
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        # data_dir: several servers may share one (cluster mode); default <workdir>/data
        self.data_dir = data_dir or workdir / "data"
        # more lines inside `wiredb ... { }` (Caddy only), e.g. a `cluster redis { ... }` block
        self.wiredb_lines = list(wiredb_lines or [])
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log_path = workdir / "server.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    # -- addressing ------------------------------------------------------------------
    def ws_id(self, room: str) -> str:
        """The `id` to give a WireDB websocket client: WireDB requests
        http://127.0.0.1:<port>/<id>, so the route prefix goes into the id."""
        return f"{self.prefix}/{room}" if self.prefix else room

    @property
    def ws_base_url(self) -> str:
        """y-websocket's serverUrl: it connects to serverUrl + "/" + room."""
        base = f"ws://127.0.0.1:{self.port}"
        return f"{base}/{self.prefix}" if self.prefix else base

    def room_file(self, room_key: str) -> Path:
        from helpers import encode_room_key

        return self.data_dir / f"{encode_room_key(room_key)}.y"

    # -- process -----------------------------------------------------------------------
    def _command(self) -> list[str]:
        if self.kind == "python":
            cmd = [sys.executable, str(HERE / "reference_server.py"), "--port", str(self.port),
                   "--data-dir", str(self.data_dir), "--prefix", self.prefix]
            return cmd
        binary = caddy_bin()
        if not binary.is_file():
            pytest.fail(f"Caddy binary not found at {binary}: build it with "
                        "`go build -o .bin/caddy ./cmd/caddy` or set WIREDB_CADDY_BIN")
        matcher = f"/{self.prefix}/*" if self.prefix else "/*"
        caddyfile = self.workdir / "Caddyfile"
        caddyfile.write_text(
            "{\n"
            "\tadmin off\n"
            "\tauto_https off\n"
            "\tpersist_config off\n"
            "}\n"
            "\n"
            f"http://127.0.0.1:{self.port} {{\n"
            f"\twiredb {matcher} {{\n"
            f"\t\tdata_dir {self.data_dir}\n"
            + "".join(f"\t\t{line}\n" for line in self.wiredb_lines)
            + "\t}\n"
            "}\n"
        )
        return [str(binary), "run", "--config", str(caddyfile), "--adapter", "caddyfile"]

    def start(self) -> "Server":
        assert self.proc is None, "already running"
        cmd = self._command()
        env = dict(os.environ)
        # Keep Caddy's own storage/config dirs inside the test's directory.
        env["XDG_DATA_HOME"] = str(self.workdir / "xdg-data")
        env["XDG_CONFIG_HOME"] = str(self.workdir / "xdg-config")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start #{self.starts}: {' '.join(cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.workdir, env=env)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                pytest.fail(f"server exited with {code} before listening:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"server not listening on {self.port} after {START_TIMEOUT}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> int | None:
        """SIGTERM, wait, SIGKILL as a last resort. Returns the exit code."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)
                with open(self.log_path, "ab") as log:
                    log.write(b"\n=== SIGKILLed: no exit within the SIGTERM timeout\n")
        return proc.returncode

    def restart(self) -> "Server":
        self.stop()
        return self.start()

    def log_tail(self, n: int = 60) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(lines[-n:])


@pytest.fixture
def make_server(tmp_path: Path, request: pytest.FixtureRequest):
    """A factory: make_server() -> a Server, not started yet (its data_dir exists, so a
    test can put files there first). Every server is stopped at teardown; logs of a
    failed test are printed."""
    servers: list[Server] = []

    def make(prefix: str | None = None, **kwargs) -> Server:
        server = Server(tmp_path / f"server{len(servers)}", prefix, **kwargs)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for server in servers:
            print(f"--- {server.kind} server log {server.log_path}:\n{server.log_tail()}")


@pytest.fixture
def server(make_server) -> Server:
    return make_server().start()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
