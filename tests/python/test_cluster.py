"""Cluster mode with WireDB's Python client: two Caddy instances sharing one Redis (our own
redis-server, AOF fsynced on every write) and one data directory. A WireDB websocket
client (pycrdt) on instance A and a Yjs client (y-websocket, yjs_peer.mjs) on instance B edit
one room and converge; afterwards the data is readable: from both instances, after both
restarted, and independently of the server from the checkpoint file meta.cp names (a WireDB
file: wire-file opens it) plus the Redis stream entries after it."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from anyio import sleep
from conftest import server_kind
from helpers import (
    RedisProcess,
    connected,
    doc_from_records,
    parse_wiredb_file,
    plain,
    read_with_wire_file,
    redis_call,
    redis_hash,
    redis_server_bin,
    roots,
    snapshot,
    wait_until,
)
from pycrdt import Doc
from test_interop import node_peer_or_skip, peer_result, start_peer

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(server_kind() != "caddy", reason="cluster mode belongs to the Caddy module"),
]


@pytest.fixture
def redis(tmp_path: Path):
    binary = redis_server_bin()
    if binary is None:
        missing = pytest.fail if os.environ.get("WIREDB_REQUIRE_REDIS") == "1" else pytest.skip
        missing("redis-server not found (install it or set WIREDB_REDIS_SERVER)")
    r = RedisProcess(binary, tmp_path / "redis").start()
    yield r
    r.stop()


def upgrade_status(port: int, path: str, timeout: float = 5.0) -> tuple[int, str]:
    """A hand-made WebSocket upgrade; returns (HTTP status, status line + body start)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: Upgrade\r\n"
                   "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    text = data.decode(errors="replace")
    return int(text.split(" ", 2)[1]), text.replace("\r\n", " | ")[:200]


def wait_ready(srv, timeout: float = 15.0) -> float:
    """Waits until the instance upgrades a WebSocket (it answers 503 until its subscription to
    Redis is in place); returns the seconds that took."""
    import time

    t0 = time.monotonic()
    last = ""
    while time.monotonic() - t0 < timeout:
        try:
            status, last = upgrade_status(srv.port, f"/{srv.ws_id('ready-probe')}")
            if status == 101:
                return time.monotonic() - t0
        except OSError as e:
            last = str(e)
        time.sleep(0.025)
    raise AssertionError(f"instance on port {srv.port} took no WebSocket client within {timeout}s: {last}")


def cluster_lines(redis: RedisProcess, name: str) -> list[str]:
    return [
        "compact 5",  # frequent checkpoints
        "cluster redis {",
        f"\turl {redis.url}",
        f"\tinstance_id {name}",
        "}",
    ]


async def test_wiredb_client_and_yjs_converge_across_instances(make_server, redis, tmp_path):
    cmd = node_peer_or_skip()
    shared = tmp_path / "shared-data"
    a = make_server(data_dir=shared, wiredb_lines=cluster_lines(redis, "a")).start()
    b = make_server(data_dir=shared, wiredb_lines=cluster_lines(redis, "b")).start()
    for srv in (a, b):
        print(f"instance on port {srv.port} took WebSocket clients {wait_ready(srv):.2f}s after listening")
    room = f"pycluster-{uuid.uuid4().hex[:8]}"

    async with connected(a.port, a.ws_id(room)) as client:
        text, map_, array = roots(client.doc)
        proc = start_peer(cmd, b, room, "exchange")  # the Yjs client talks to B
        try:
            # several transactions (several updates, checkpoints with compact 5), the last one
            # sets map.py, which the Yjs peer waits for
            for i in range(8):
                with client.doc.transaction():
                    array.append(f"py{i}")
                    text += f"p{i} "
                await sleep(0.01)
            with client.doc.transaction():
                text += "py:hello "
                map_["py"] = "python"
                map_["both"] = "py"
                map_["nested"] = {"list": ["a", 1.5, False]}
            await wait_until(lambda: map_.get("js") == "yjs", timeout=25,
                             what="the Yjs edits (instance B) to reach the WireDB client (instance A)")
            yjs_final = await peer_result(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        await wait_until(lambda: snapshot(client.doc) == plain(yjs_final), timeout=10,
                         what="the WireDB client to hold exactly what the Yjs client ended with")
        final = snapshot(client.doc)

    assert "error" not in yjs_final, yjs_final
    assert final["map"]["py"] == "python" and final["map"]["js"] == "yjs"
    assert "py:hello " in final["text"] and "js:hello " in final["text"]
    assert [x for x in final["array"] if str(x).startswith("py")] == [f"py{i}" for i in range(8)]

    # readable from either instance by a new WireDB client
    for srv in (a, b):
        async with connected(srv.port, srv.ws_id(room)) as late:
            await wait_until(lambda: snapshot(late.doc) == final, what=f"a new client on port {srv.port} to get the room")

    # readable after both instances restarted (nothing in any instance's memory)
    a.stop()
    b.stop()
    b.start()
    wait_ready(b)
    async with connected(b.port, b.ws_id(room)) as again:
        await wait_until(lambda: snapshot(again.doc) == final, what="the restarted instance to serve the room")
    b.stop()

    # readable without any server: meta.cp (a WireDB file) + the stream entries after it
    key = f"wiredb:{{{room}}}"
    meta = redis_hash(redis_call(redis.port, "HGETALL", f"{key}:meta"))
    entries = redis_call(redis.port, "XRANGE", f"{key}:log", "-", "+")
    assert "cp" in meta, f"no checkpoint after {len(final['array'])} array items with compact 5: meta {meta}"
    cp = shared / meta["cp"].decode()
    assert cp.is_file(), f"meta.cp {cp.name} not in {sorted(p.name for p in shared.iterdir())}"
    records = parse_wiredb_file(cp.read_bytes())  # the WireDB format, whole records only
    doc = Doc()
    for r in records:
        doc.apply_update(r)
    for _entry_id, fields in entries:
        f = redis_hash(fields)
        doc.apply_update(f["u"])
    assert snapshot(doc) == final, f"checkpoint {cp.name} ({len(records)} records) + {len(entries)} stream entries"
    # and WireDB's own file wire opens the checkpoint (it holds what came up to meta.cpseq)
    from_file = await read_with_wire_file(cp)
    assert from_file == snapshot(doc_from_records(records))
