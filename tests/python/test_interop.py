"""Interop of the wiredb Caddy module with WireDB (Python), pycrdt and Yjs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import anyio
import pytest
from anyio import fail_after, sleep
from helpers import (
    WS_HOST,
    connected,
    doc_from_records,
    encode_record,
    file_client,
    parse_wiredb_file,
    plain,
    read_with_wire_file,
    roots,
    snapshot,
    wait_until,
    write_with_wire_file,
)
from pycrdt import Array, Doc, Map, Text

pytestmark = pytest.mark.anyio

HERE = Path(__file__).resolve().parent
NODE_DIR = Path(os.environ.get("WIREDB_NODE_DIR") or HERE.parent / "node")


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


# ----------------------------------------------------------------------------------------
# 1. Two WireDB websocket clients through the Caddy route
# ----------------------------------------------------------------------------------------
async def test_two_wiredb_clients_converge(server):
    room = unique("pyws")
    async with (
        connected(server.port, server.ws_id(room)) as c0,
        connected(server.port, server.ws_id(room)) as c1,
    ):
        t0, m0, a0 = roots(c0.doc)
        t1, m1, a1 = roots(c1.doc)

        # client 0 -> client 1
        t0 += "Hello"
        m0["from0"] = "zero"
        a0.append("a0")
        await wait_until(lambda: str(t1) == "Hello" and m1.get("from0") == "zero" and a1.to_py() == ["a0"],
                         what="client 1 to see client 0's edits")

        # client 1 -> client 0, including a nested value and an insert at the start
        t1.insert(0, ">> ")
        t1 += ", World!"
        m1["from1"] = {"nested": ["x", True, 1.5]}
        a1.extend(["b1", "c1"])
        await wait_until(lambda: str(t0) == ">> Hello, World!" and "from1" in m0 and len(a0) == 3,
                         what="client 0 to see client 1's edits")

        # concurrent edits from both sides, no wait in between
        m0["both"] = "zero"
        m1["both"] = "one"
        t0 += " [0]"
        t1 += " [1]"
        a0.insert(0, "first0")
        a1.append("last1")
        del m0["from0"]
        await wait_until(lambda: snapshot(c0.doc) == snapshot(c1.doc), what="the two clients to converge")

        final = snapshot(c0.doc)
        assert final["text"].startswith(">> Hello, World! [")
        assert "[0]" in final["text"] and "[1]" in final["text"]
        assert final["map"]["both"] in ("zero", "one")
        assert "from0" not in final["map"]
        assert final["map"]["from1"] == {"nested": ["x", True, 1.5]}
        assert sorted(final["array"]) == sorted(["first0", "a0", "b1", "c1", "last1"])
        assert final["array"][0] == "first0" and final["array"][-1] == "last1"

        # a late joiner gets the whole state from the server (its step 2 answer)
        async with connected(server.port, server.ws_id(room)) as c2:
            await wait_until(lambda: snapshot(c2.doc) == final, what="a late joiner to get the room's state")


async def test_rooms_are_isolated(server):
    room_a, room_b = unique("iso-a"), unique("iso-b")
    async with (
        connected(server.port, server.ws_id(room_a)) as a0,
        connected(server.port, server.ws_id(room_a)) as a1,
        connected(server.port, server.ws_id(room_b)) as b0,
    ):
        roots(a0.doc)[0].insert(0, "only in A")
        roots(b0.doc)[0].insert(0, "only in B")
        await wait_until(lambda: str(roots(a1.doc)[0]) == "only in A", what="room A to sync")
        await sleep(0.3)
        assert str(roots(b0.doc)[0]) == "only in B"
        assert str(roots(a1.doc)[0]) == "only in A"


# ----------------------------------------------------------------------------------------
# 2. pycrdt (WireDB client) and Yjs (y-websocket WebsocketProvider) in one room
# ----------------------------------------------------------------------------------------
def node_peer_or_skip() -> list[str]:
    """Skipped where node or tests/node/node_modules is missing, except in CI (CI=true),
    where that is a failure."""
    missing = pytest.fail if os.environ.get("CI") else pytest.skip
    node = shutil.which("node")
    if node is None:
        missing("node is not installed")
    for package in ("yjs", "y-websocket", "ws"):
        if not (NODE_DIR / "node_modules" / package / "package.json").is_file():
            missing(f"{NODE_DIR}/node_modules/{package} missing: run `npm ci` in {NODE_DIR}")
    return [node, str(HERE / "yjs_peer.mjs")]


def start_peer(cmd: list[str], server, room: str, mode: str) -> subprocess.Popen:
    env = dict(os.environ, WIREDB_NODE_DIR=str(NODE_DIR))
    return subprocess.Popen([*cmd, server.ws_base_url, room, mode, "20000"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)


async def peer_result(proc: subprocess.Popen, timeout: float = 30) -> dict:
    try:
        out, err = await anyio.to_thread.run_sync(lambda: proc.communicate(timeout=timeout))
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    err_text = err.decode(errors="replace")
    assert proc.returncode == 0, f"yjs peer exited {proc.returncode}\nstdout: {out!r}\nstderr:\n{err_text}"
    lines = out.decode().strip().splitlines()
    assert lines, f"yjs peer printed nothing; stderr:\n{err_text}"
    return json.loads(lines[-1])


async def test_pycrdt_and_yjs_converge(server):
    cmd = node_peer_or_skip()
    room = unique("mixed")
    async with connected(server.port, server.ws_id(room)) as client:
        text, map_, array = roots(client.doc)
        proc = start_peer(cmd, server, room, "exchange")
        try:
            # All Python edits in one transaction, so one update: seeing map.py means seeing all.
            with client.doc.transaction():
                text += "py:hello "
                map_["py"] = "python"
                map_["both"] = "py"
                map_["nested"] = {"list": ["a", 1.5, False]}
                array.extend(["py1", 3.25])
            await wait_until(lambda: map_.get("js") == "yjs", timeout=25, what="the yjs edits to reach Python")
            yjs_final = await peer_result(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        py_final = snapshot(client.doc)

    assert "error" not in yjs_final, yjs_final
    assert plain(yjs_final) == py_final
    assert "py:hello " in py_final["text"] and "js:hello " in py_final["text"]
    assert py_final["map"]["py"] == "python" and py_final["map"]["js"] == "yjs"
    assert py_final["map"]["both"] in ("py", "js")
    assert py_final["map"]["nested"] == {"list": ["a", 1.5, False]}
    assert sorted(map(str, py_final["array"])) == sorted(["py1", "3.25", "js1", "2.0"])


async def test_yjs_state_reaches_a_later_pycrdt_client(server):
    """yjs writes and leaves; a WireDB client joining afterwards gets it from the server."""
    cmd = node_peer_or_skip()
    room = unique("later")
    yjs_final = await peer_result(start_peer(cmd, server, room, "write"))
    assert "error" not in yjs_final, yjs_final
    async with connected(server.port, server.ws_id(room)) as client:
        await wait_until(lambda: snapshot(client.doc) == plain(yjs_final),
                         what="the later Python client to get the yjs state")


# ----------------------------------------------------------------------------------------
# 3. WireDB's file format, both ways
# ----------------------------------------------------------------------------------------
def fill_text(doc: Doc) -> None:
    doc.get("text", type=Text).insert(0, "written by wire-file")


def fill_map(doc: Doc) -> None:
    doc.get("map", type=Map)["origin"] = "python"
    doc.get("map", type=Map)["n"] = 2.5


def fill_array(doc: Doc) -> None:
    doc.get("array", type=Array).extend(["r1", "r2"])
    doc.get("text", type=Text).insert(0, "[")


async def test_wire_file_written_file_loads_in_server(make_server):
    """A file written by WireDB's file wire, put at <data_dir>/pyfile1.y before the server
    starts, is served; edits made through the server land in the same file, which WireDB's
    file wire then reads back."""
    srv = make_server()
    path = srv.room_file("pyfile1")
    assert path.name == "pyfile1.y"
    doc = await write_with_wire_file(path, [fill_text, fill_map, fill_array])
    expected = snapshot(doc)
    records = parse_wiredb_file(path.read_bytes())
    assert len(records) >= 3, "expected one record per transaction"

    srv.start()
    async with connected(srv.port, srv.ws_id("pyfile1")) as client:
        await wait_until(lambda: snapshot(client.doc) == expected,
                         what="the websocket client to see the file's content")
        text, map_, _ = roots(client.doc)
        text += " +ws"
        map_["via"] = "caddy"
        expected = snapshot(client.doc)
        # another client sees the edits, so the server accepted them
        async with connected(srv.port, srv.ws_id("pyfile1")) as other:
            await wait_until(lambda: snapshot(other.doc) == expected, what="the edit to be relayed")
    assert srv.stop() == 0, srv.log_tail()

    parse_wiredb_file(path.read_bytes())  # still the WireDB format, whole records only
    assert await read_with_wire_file(path) == expected


async def test_server_written_file_opens_with_wire_file(make_server):
    """A file the server wrote (edits over websocket, then the server stopped) opens with
    WireDB's file wire with the same content; then a record appended by wire-file is
    served after a restart."""
    srv = make_server().start()
    room = "pyfile2"
    async with (
        connected(srv.port, srv.ws_id(room)) as c0,
        connected(srv.port, srv.ws_id(room)) as c1,
    ):
        t0, m0, a0 = roots(c0.doc)
        t0 += "hello from websocket"
        m0["k"] = "v"
        await wait_until(lambda: str(roots(c1.doc)[0]) == "hello from websocket", what="relay")
        t1, m1, a1 = roots(c1.doc)
        a1.extend(["x", "y"])
        m1["k2"] = {"deep": [1.5]}
        del m0["k"]
        await wait_until(lambda: snapshot(c0.doc) == snapshot(c1.doc), what="convergence")
        expected = snapshot(c0.doc)
        # Before compaction: the live file, one record per update, read from a copy
        # (wire-file may squash a file it opens).
        live = srv.room_file(room).read_bytes()
        assert len(parse_wiredb_file(live)) > 1, "the live file is already compacted"
        before = srv.data_dir.parent / "before-compaction.y"
        before.write_bytes(live)
        assert await read_with_wire_file(before) == expected
    assert srv.stop() == 0, srv.log_tail()

    # After compaction (the server compacts on stop): one record, same content.
    path = srv.room_file(room)
    assert path.is_file(), f"no {path.name} in {sorted(p.name for p in srv.data_dir.iterdir())}"
    data = path.read_bytes()
    assert data.startswith(b"0.0.1\x00"), data[:16]
    records = parse_wiredb_file(data)
    assert len(records) == 1, f"{len(records)} records after a graceful stop, want 1 (compacted)"
    assert snapshot(doc_from_records(records)) == expected  # pycrdt reads each record
    assert await read_with_wire_file(path) == expected  # and so does wire-file

    # wire-file appends to the server's file; the server serves it after a restart
    doc = Doc()
    with fail_after(5):
        async with file_client(doc, path):
            await sleep(0.05)
            roots(doc)[0].insert(0, "appended by wire-file: ")
            want = snapshot(doc)
            await wait_until(lambda: snapshot(doc_from_records(parse_wiredb_file(path.read_bytes()))) == want,
                             what="wire-file to append")
    srv.start()
    async with connected(srv.port, srv.ws_id(room)) as client:
        await wait_until(lambda: snapshot(client.doc) == want, what="the restarted server to serve it")


async def test_room_key_is_percent_encoded_in_file_name(make_server):
    """/rooms/notes/42 is room "notes/42", stored as notes%2F42.y."""
    srv = make_server().start()
    key = "notes/42"
    async with connected(srv.port, srv.ws_id(key)) as client:
        roots(client.doc)[0].insert(0, "encoded")
        want = snapshot(client.doc)
        async with connected(srv.port, srv.ws_id(key)) as other:
            await wait_until(lambda: snapshot(other.doc) == want, what="relay")
    assert srv.stop() == 0, srv.log_tail()
    path = srv.data_dir / "notes%2F42.y"
    assert path.is_file(), sorted(p.name for p in srv.data_dir.iterdir())
    assert await read_with_wire_file(path) == want


# ----------------------------------------------------------------------------------------
# 4. Recovery rules (README, "File format"; the Go server only: WireDB itself refuses such files)
# ----------------------------------------------------------------------------------------
caddy_only = pytest.mark.skipif(os.environ.get("WIREDB_SERVER", "caddy") != "caddy",
                                reason="recovery rules are the Go server's (wire-file raises on these files)")


@caddy_only
async def test_torn_last_record_is_cut_back(make_server):
    srv = make_server()
    path = srv.room_file("torn1")
    doc = await write_with_wire_file(path, [fill_text, fill_map])
    whole = path.read_bytes()
    records = parse_wiredb_file(whole)
    extra = Doc()
    extra.apply_update(doc.get_update())
    extra.get("array", type=Array).append("lost in the crash")
    last = encode_record(extra.get_update(doc.get_state()))
    path.write_bytes(whole + last[: len(last) // 2])  # a crash mid-write

    srv.start()
    async with connected(srv.port, srv.ws_id("torn1")) as client:
        await wait_until(lambda: snapshot(client.doc) == snapshot(doc_from_records(records)),
                         what="the whole records to be served")
    assert srv.stop() == 0, srv.log_tail()
    after = parse_wiredb_file(path.read_bytes())  # the torn tail is gone, the rest is whole
    assert snapshot(doc_from_records(after)) == snapshot(doc)


@caddy_only
@pytest.mark.parametrize("damage", ["wrong_version", "bad_middle_record"])
async def test_unreadable_file_is_refused_and_left_untouched(make_server, damage):
    srv = make_server()
    path = srv.room_file("bad1")
    await write_with_wire_file(path, [fill_text, fill_map, fill_array])
    data = path.read_bytes()
    if damage == "wrong_version":
        data = b"9.9.9\x00" + data[len(b"0.0.1\x00"):]
    else:
        data = data[:6] + encode_record(b"\xff\xff\xff\xff") + data[6:]
    path.write_bytes(data)

    srv.start()
    messages, close = await raw_session(srv.port, srv.ws_id("bad1"))
    assert close is not None, f"the server kept the connection open, sending {messages}"
    assert not any(m[:2] == b"\x00\x01" for m in messages), "the server sent a sync step 2 from an unreadable file"
    code, reason = close
    want = "unknown WireDB version" if damage == "wrong_version" else "corrupt record"
    assert code == 1011 and want in reason, close
    assert str(srv.data_dir) not in reason, f"the close reason names a server path: {reason}"
    assert srv.stop() == 0, srv.log_tail()
    assert str(path) in srv.log_path.read_text(errors="replace"), "the server log does not name the refused file"
    assert path.read_bytes() == data, "the unreadable file was modified"


async def raw_session(port: int, ws_id: str, timeout: float = 5) -> tuple[list[bytes], tuple[int, str] | None]:
    """Connect with a bare websocket, send an empty sync step 1, collect what the server
    sends until it closes (close = (code, reason)) or `timeout` passes (close = None)."""
    from httpx_ws import WebSocketDisconnect, aconnect_ws

    messages: list[bytes] = []
    close = None
    try:
        with anyio.move_on_after(timeout):
            async with aconnect_ws(f"{WS_HOST}:{port}/{ws_id}", keepalive_ping_interval_seconds=None) as ws:
                await ws.send_bytes(b"\x00\x00\x01\x00")
                while True:
                    messages.append(bytes(await ws.receive_bytes()))
    except BaseException as exc:  # the disconnect comes wrapped in task-group exception groups
        found = [exc]
        while found:
            e = found.pop()
            if isinstance(e, WebSocketDisconnect):
                close = (e.code, e.reason)
                break
            found.extend(getattr(e, "exceptions", ()))
        else:
            raise
    return messages, close
