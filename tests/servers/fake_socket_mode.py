"""A local Slack Socket Mode server: a real websocket server on loopback.

Point FakeSlack.socket_mode_url at FakeSocketMode.url; slack_sdk's SocketModeClient
(and slack_bolt's SocketModeHandler) then connect to it through apps.connections.open.
On connect it sends `hello`; push() sends an envelope and returns the client's ack.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from types import TracebackType
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from tests.servers.ports import LOOPBACK

JsonDict = dict[str, Any]
APP_ID = "A0TEST"
PING_INTERVAL = 0.2  # seconds


class FakeSocketMode:
    """The websocket side of Socket Mode; runs its own event loop in a thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._received: list[JsonDict] = []  # every JSON message clients sent, in order
        self._connections: list[ServerConnection] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._ready = threading.Event()
        self.port = 0

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fake-socket-mode", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=10) or self._server is None:
            raise RuntimeError("the fake Socket Mode server did not start")

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set_result, None)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> FakeSocketMode:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """What apps.connections.open answers (plain ws: slack_sdk skips TLS on ports other than 443)."""
        return f"ws://{LOOPBACK}:{self.port}/link/?ticket=fake-ticket&app_id={APP_ID}"

    # ------------------------------------------------------------ talking to clients
    def wait_for_connection(self, count: int = 1, timeout: float = 10.0) -> None:
        """Block until `count` clients are connected (and were sent hello)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._connections) >= count, timeout=timeout):
                raise TimeoutError(f"{len(self._connections)} Socket Mode clients connected, wanted {count}")

    def push(
        self,
        envelope_type: str,
        payload: JsonDict,
        *,
        accepts_response_payload: bool | None = None,
        retry_attempt: int = 0,
        timeout: float = 10.0,
    ) -> JsonDict:
        """Send an envelope (slash_commands, interactive, events_api) and return the client's ack.

        retry_attempt > 0 marks an events_api envelope as Slack's redelivery of the same event.
        """
        envelope_id = str(uuid.uuid4())
        envelope: JsonDict = {"envelope_id": envelope_id, "type": envelope_type, "payload": payload}
        if accepts_response_payload is None:
            accepts_response_payload = envelope_type in ("slash_commands", "interactive")
        envelope["accepts_response_payload"] = accepts_response_payload
        if envelope_type == "events_api":
            envelope.update(retry_attempt=retry_attempt, retry_reason="timeout" if retry_attempt else "")
        self.send(envelope)
        return self.wait_for_ack(envelope_id, timeout=timeout)

    def send(self, message: JsonDict) -> None:
        """Send any JSON message (e.g. {"type": "disconnect", "reason": "refresh_requested"}) to the newest client."""
        self.wait_for_connection()
        assert self._loop is not None
        with self._cond:
            connection = self._connections[-1]
        asyncio.run_coroutine_threadsafe(connection.send(json.dumps(message)), self._loop).result(timeout=10)

    def wait_for_ack(self, envelope_id: str, timeout: float = 10.0) -> JsonDict:
        with self._cond:
            if not self._cond.wait_for(lambda: self._ack_locked(envelope_id) is not None, timeout=timeout):
                raise TimeoutError(f"no ack for envelope {envelope_id} within {timeout}s")
            ack = self._ack_locked(envelope_id)
            assert ack is not None
            return ack

    def received(self) -> list[JsonDict]:
        """Every JSON message clients sent (acks), oldest first."""
        with self._cond:
            return list(self._received)

    def _ack_locked(self, envelope_id: str) -> JsonDict | None:
        return next((m for m in self._received if m.get("envelope_id") == envelope_id), None)

    # ------------------------------------------------------------ server thread
    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        assert self._loop is not None
        self._stopped = self._loop.create_future()
        # Frequent pings wake slack_sdk's receiving thread, so its close() returns at once
        # instead of after its 3 s socket timeout; no ping_timeout: a slow pong never drops a client.
        async with serve(self._handle, LOOPBACK, 0, ping_interval=PING_INTERVAL, ping_timeout=None) as server:
            self._server = server
            self.port = int(next(iter(server.sockets)).getsockname()[1])
            self._ready.set()
            await self._stopped

    async def _handle(self, connection: ServerConnection) -> None:
        await connection.send(json.dumps({
            "type": "hello", "num_connections": 1,
            "debug_info": {"host": "fake-socket-mode", "approximate_connection_time": 3600},
            "connection_info": {"app_id": APP_ID},
        }))
        with self._cond:
            self._connections.append(connection)
            self._cond.notify_all()
        try:
            async for message in connection:
                self._record(message)
        except ConnectionClosed:
            pass
        finally:
            with self._cond:
                self._connections.remove(connection)
                self._cond.notify_all()

    def _record(self, message: str | bytes) -> None:
        try:
            parsed = json.loads(message)
        except ValueError:
            parsed = {"_unparsed": message if isinstance(message, str) else message.decode("utf-8", "replace")}
        with self._cond:
            self._received.append(parsed)
            self._cond.notify_all()
