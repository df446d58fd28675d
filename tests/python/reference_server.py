"""WireDB's own Python websocket server, with each room connected to a WireDB file, laid
out like the Go server: a room is reached at /<prefix>/<key> and stored in
<data_dir>/<encoded key>.y. Used only to check that the tests themselves are right
(WIREDB_SERVER=python); it is not the server under test.

    python reference_server.py --port 8000 --data-dir ./data [--prefix rooms]
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

import anyio
from anyio import TASK_STATUS_IGNORED, open_signal_receiver, sleep_forever
from anyio.abc import TaskStatus

import wiredb
from helpers import encode_room_key, file_client


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--prefix", default="rooms")
    args = parser.parse_args()
    route = f"/{args.prefix}/" if args.prefix else "/"
    data_dir: Path = args.data_dir

    class FileRoom(wiredb.Room):
        # The WireDB server's room id is the request path, e.g. "/rooms/pyfile1".
        async def run(self, *a, **kw) -> None:
            await self.task_group.start(self._connect_to_file)
            await super().run(*a, **kw)

        async def _connect_to_file(self, *, task_status: TaskStatus[None] = TASK_STATUS_IGNORED) -> None:
            key = self.id[len(route):] if self.id.startswith(route) else self.id.lstrip("/")
            path = data_dir / f"{encode_room_key(key)}.y"
            async with file_client(self.doc, path):
                task_status.started()
                await sleep_forever()

    if hasattr(wiredb, "bind"):
        server = wiredb.bind("websocket", room_factory=FileRoom, host="127.0.0.1", port=args.port)
    else:
        from wire_websocket import AsyncWebSocketServer

        server = AsyncWebSocketServer(room_factory=FileRoom, host="127.0.0.1", port=args.port)

    async def serve() -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        with open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with server:
                async for _ in signals:
                    break

    anyio.run(serve)


if __name__ == "__main__":
    main()
