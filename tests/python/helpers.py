"""Helpers shared by the interop tests (imported as a plain module: pytest puts
this directory on sys.path because it holds conftest.py and no __init__.py)."""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import wiredb
from anyio import CancelScope, current_time, fail_after, sleep
from pycrdt import Array, Doc, Map, Text

# WireDB's own URL rule: wire-websocket requests f"{host}:{port}/{id}" (no scheme is
# added, so `host` must carry it: "http://127.0.0.1").
WS_HOST = "http://127.0.0.1"

# WireDB's file format (wire-file, "0.0.1"): header = version + NUL, then records of
# varUint(len(update)) + update.
FILE_HEADER = b"0.0.1\x00"


# --------------------------------------------------------------------------------------
# WireDB clients, through whichever API the installed wiredb has:
#   wiredb <= 0.6.x: wiredb.connect("websocket" | "file", ...)   (the API of seed/ README)
#   wiredb >= 0.7.0: wire_websocket.AsyncWebSocketClient / wire_file.AsyncFileClient
# --------------------------------------------------------------------------------------
HAS_CONNECT = hasattr(wiredb, "connect")


def ws_client(port: int, ws_id: str, doc: Doc | None = None):
    """An async context manager: a WireDB websocket client in room `ws_id`, which is
    appended to the URL path: http://127.0.0.1:<port>/<ws_id>. Entering it returns once
    the server answered the client's sync step 1 (WireDB waits for step 2)."""
    if HAS_CONNECT:
        return wiredb.connect("websocket", id=ws_id, doc=doc, host=WS_HOST, port=port)
    from wire_websocket import AsyncWebSocketClient

    return AsyncWebSocketClient(id=ws_id, doc=doc, host=WS_HOST, port=port)


def file_client(doc: Doc, path: Path | str):
    """An async context manager: WireDB's file wire on `path` synced with `doc`."""
    if HAS_CONNECT:
        return wiredb.connect("file", doc=doc, path=path)
    from wire_file import AsyncFileClient

    return AsyncFileClient(doc=doc, path=path)


@asynccontextmanager
async def connected(port: int, ws_id: str, doc: Doc | None = None, timeout: float = 10) -> AsyncIterator[Any]:
    """ws_client, but entering is bounded by `timeout` (TimeoutError): WireDB's client
    waits forever for step 2 if the server closes the connection or never answers."""
    entered = False
    with CancelScope(deadline=current_time() + timeout) as scope:
        async with ws_client(port, ws_id, doc) as client:
            entered = True
            scope.deadline = math.inf  # connected: no more deadline
            yield client
    if not entered:
        raise TimeoutError(f"no sync step 2 from the server for {ws_id!r} within {timeout}s")


# --------------------------------------------------------------------------------------
# Document snapshots
# --------------------------------------------------------------------------------------
def roots(doc: Doc) -> tuple[Text, Map, Array]:
    return doc.get("text", type=Text), doc.get("map", type=Map), doc.get("array", type=Array)


def plain(value: Any) -> Any:
    # Yjs numbers are doubles; make 1 and 1.0 compare equal across implementations.
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def snapshot(doc: Doc) -> dict[str, Any]:
    text, map_, array = roots(doc)
    return plain({"text": str(text), "map": map_.to_py(), "array": array.to_py()})


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll `predicate` every 20 ms, at most `timeout` seconds."""
    try:
        with fail_after(timeout):
            while not predicate():
                await sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


# --------------------------------------------------------------------------------------
# WireDB file format, parsed strictly (independently of wire-file)
# --------------------------------------------------------------------------------------
def parse_wiredb_file(data: bytes) -> list[bytes]:
    """Header "0.0.1\\0", then whole records `varUint(len) update`, nothing left over."""
    assert data[: len(FILE_HEADER)] == FILE_HEADER, f"bad header: {data[:16]!r}"
    records = []
    i = len(FILE_HEADER)
    while i < len(data):
        length = shift = 0
        while True:
            assert i < len(data), "torn varUint at end of file"
            byte = data[i]
            i += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
            assert shift < 64, "varUint too long"
        assert i + length <= len(data), f"torn record: needs {length} bytes, {len(data) - i} left"
        records.append(data[i : i + length])
        i += length
    return records


def encode_record(update: bytes) -> bytes:
    out = bytearray()
    n = len(update)
    while n > 0x7F:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    out.append(n)
    return bytes(out) + update


def doc_from_records(records: list[bytes]) -> Doc:
    doc = Doc()
    for update in records:
        doc.apply_update(update)
    return doc


def encode_room_key(key: str) -> str:
    """The Go server's file name rule: every byte outside [A-Za-z0-9._-] as %XX."""
    safe = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
    return "".join(chr(b) if b in safe else f"%{b:02X}" for b in key.encode())


async def read_with_wire_file(path: Path, timeout: float = 5.0) -> dict[str, Any]:
    """Open a copy of `path` with WireDB's file wire (so the original is never touched)
    and return the snapshot of what it loaded."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / path.name
        shutil.copyfile(path, copy)
        doc = Doc()
        with fail_after(timeout):
            async with file_client(doc, copy):
                await sleep(0.05)
        return snapshot(doc)


async def write_with_wire_file(path: Path, edits: list[Callable[[Doc], None]], timeout: float = 5.0) -> Doc:
    """Write a WireDB file at `path`: edits[0] is made before the file wire connects
    (it lands as the step-2 record), each further edit is a transaction while connected
    (one record each). Returns the doc once the file holds all of it."""
    doc = Doc()
    if edits:
        edits[0](doc)
    with fail_after(timeout):
        async with file_client(doc, path):
            for edit in edits[1:]:
                with doc.transaction():
                    edit(doc)
                await sleep(0.02)
            want = snapshot(doc)

            def on_disk() -> bool:
                try:
                    return snapshot(doc_from_records(parse_wiredb_file(path.read_bytes()))) == want
                except AssertionError:
                    return False

            # wire-file writes from a background task: wait for it before leaving,
            # leaving cancels a pending write.
            await wait_until(on_disk, timeout=timeout, what=f"wire-file to write {path}")
    return doc



# --------------------------------------------------------------------------------------
# Redis for the cluster-mode tests (test_cluster.py): a redis-server of our own on a free
# 127.0.0.1 port, append-only file fsynced on every write, and a tiny binary-safe RESP
# client (one TCP connection per call; bulk strings come back as bytes).
# --------------------------------------------------------------------------------------
def redis_server_bin() -> str | None:
    """$WIREDB_REDIS_SERVER, else redis-server on PATH, else None."""
    import os

    env = os.environ.get("WIREDB_REDIS_SERVER")
    if env:
        return env if Path(env).is_file() else None
    return shutil.which("redis-server")


def _resp_command(args: tuple) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, (bytes, bytearray)) else str(a).encode()
        out += [b"$%d\r\n" % len(b), bytes(b), b"\r\n"]
    return b"".join(out)


def _resp_parse(buf: bytes, pos: int = 0):
    """(value, next_pos), or None if more bytes are needed. Errors come back as RuntimeError values."""
    eol = buf.find(b"\r\n", pos)
    if eol < 0:
        return None
    kind, line, nxt = buf[pos:pos + 1], buf[pos + 1:eol], eol + 2
    if kind == b"+":
        return line.decode(), nxt
    if kind == b"-":
        return RuntimeError(line.decode()), nxt
    if kind == b":":
        return int(line), nxt
    if kind == b"$":
        n = int(line)
        if n < 0:
            return None, nxt
        if len(buf) < nxt + n + 2:
            return None
        return buf[nxt:nxt + n], nxt + n + 2
    if kind == b"*":
        n = int(line)
        if n < 0:
            return None, nxt
        items = []
        for _ in range(n):
            r = _resp_parse(buf, nxt)
            if r is None:
                return None
            items.append(r[0])
            nxt = r[1]
        return items, nxt
    raise ValueError(f"RESP: unexpected type byte {kind!r}")


def redis_call(port: int, *args, timeout: float = 5.0):
    """One Redis command on 127.0.0.1:port; returns its reply (raises on a Redis error)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(_resp_command(args))
        buf = b""
        while True:
            r = _resp_parse(buf) if buf else None
            if r is not None:
                if isinstance(r[0], RuntimeError):
                    raise r[0]
                return r[0]
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError(f"redis :{port} closed the connection before replying to {args[0]}")
            buf += chunk


class RedisProcess:
    """redis-server --port <free> --bind 127.0.0.1 --dir <dir> --appendonly yes
    --appendfsync always --save '' (no daemon, no system service). stop() ends it by PID."""

    def __init__(self, binary: str, directory: Path) -> None:
        import socket

        self.binary = binary
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log_path = directory / "redis.log"
        self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> "RedisProcess":
        import subprocess
        import time

        cmd = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
               "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
               "--logfile", ""]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=self.dir)
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if redis_call(self.port, "PING", timeout=1) == "PONG":
                    return self
            except (OSError, RuntimeError) as e:
                last = str(e)
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer PING on {self.port}: {last}\n{self.log_tail()}")

    def stop(self) -> None:
        import subprocess

        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return "(no redis log)"


def redis_hash(reply) -> dict[str, bytes]:
    """An HGETALL reply as {field: value bytes}."""
    reply = reply or []
    return {reply[i].decode(): reply[i + 1] for i in range(0, len(reply) - 1, 2)}
