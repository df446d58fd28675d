"""The HTTP API of a `wiredb` route (issue 17, `http_api`) seen from Python: a backend
(pycrdt + httpx) GETs a room as one Yjs update, edits its copy and POSTs the difference;
WireDB's own websocket client connected to the room receives it, and so does a client
that joins later. GET as JSON shows what both wrote."""

from __future__ import annotations

import base64
import uuid

import httpx
import pytest
from anyio import fail_after, sleep
from conftest import server_kind
from helpers import connected, roots, snapshot, wait_until
from pycrdt import Doc, Map, Text

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(server_kind() != "caddy", reason="the HTTP API belongs to the Caddy module"),
]

TIMEOUT = httpx.Timeout(5.0)


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def decode_state_vector(data: bytes) -> dict[int, int]:
    """Yjs' state vector encoding: varUint(n), then n pairs varUint(client), varUint(clock)."""
    pos = 0

    def var_uint() -> int:
        nonlocal pos
        n, shift = 0, 0
        while True:
            b = data[pos]
            pos += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return n

    return {var_uint(): var_uint() for _ in range(var_uint())}


@pytest.fixture
def api_server(make_server):
    return make_server(wiredb_lines=["http_api"]).start()


async def test_wiredb_client_sees_a_backend_post(api_server):
    server = api_server
    room = unique("pyapi")
    url = f"http://127.0.0.1:{server.port}/{server.ws_id(room)}"
    async with httpx.AsyncClient(timeout=TIMEOUT) as http, connected(server.port, server.ws_id(room)) as client:
        text, map_, _ = roots(client.doc)
        text += "from python client;"
        map_["client"] = "wiredb"

        # the backend reads the room as one update once the server has the client's edit
        backend = Doc()

        with fail_after(5):
            while True:
                r = await http.get(url, headers={"Accept": "application/octet-stream"})
                if r.status_code == 200 and b"from python client;" in r.content:
                    break
                await sleep(0.05)
        assert r.headers["content-type"].startswith("application/octet-stream")
        backend.apply_update(r.content)
        btext = backend.get("text", type=Text)
        bmap = backend.get("map", type=Map)
        assert str(btext) == "from python client;"

        # edit the copy and POST what changed
        before = backend.get_state()
        btext += "from backend;"
        bmap["backend"] = {"n": 1, "list": ["a", True]}
        update = backend.get_update(before)
        r = await http.post(url, content=update, headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["room"] == room
        assert decode_state_vector(base64.b64decode(body["state_vector"])) == decode_state_vector(backend.get_state())

        await wait_until(lambda: str(text) == "from python client;from backend;" and "backend" in map_,
                         timeout=5, what="the WireDB client to receive the backend's POST")
        assert snapshot(client.doc)["map"]["backend"] == {"n": 1.0, "list": ["a", True]}

        # GET as JSON renders what both wrote
        r = await http.get(url, headers={"Accept": "application/json"})
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["text"] == {"type": "Text", "value": "from python client;from backend;"}
        assert doc["map"]["type"] == "Map"
        assert doc["map"]["value"]["client"] == "wiredb"
        assert doc["map"]["value"]["backend"] == {"n": 1, "list": ["a", True]}

        # an invalid body changes nothing
        r = await http.post(url, content=b"not an update", headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 400, r.text
        assert r.json()["error"]

        # a late WireDB client gets everything
        async with connected(server.port, server.ws_id(room)) as late:
            await wait_until(lambda: snapshot(late.doc) == snapshot(client.doc), timeout=5,
                             what="a late joiner to get the room with the POSTed content")


async def test_backend_post_creates_a_room_a_wiredb_client_then_opens(api_server):
    server = api_server
    room = unique("pyapi-new")
    url = f"http://127.0.0.1:{server.port}/{server.ws_id(room)}"
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        r = await http.get(url)
        assert r.status_code == 404, r.text
        backend = Doc()
        backend.get("text", type=Text).insert(0, "created over HTTP")
        r = await http.post(url, content=backend.get_update(), headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 200, r.text
        assert server.room_file(room).is_file()
    async with connected(server.port, server.ws_id(room)) as client:
        await wait_until(lambda: str(roots(client.doc)[0]) == "created over HTTP", timeout=5,
                         what="the WireDB client to load the room the POST created")
