"""One socket write for a batch of messages (alpaca_compat/streams/frames.py), against the
uvicorn the service runs: a real server on a free port, a tiny ASGI app calling
``write_frames`` on uvicorn's own ``send``, and a real websockets client reading what arrived.
Were uvicorn to change what ``write_frames`` reads, these fail instead of the streams quietly
falling back to one write a message."""

from __future__ import annotations

import asyncio
import threading

import pytest
import uvicorn
from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import connect

from alpaca_compat.streams.frames import write_frames
from portfolio_project.server import Worker
from scripts.cluster.nodes import free_port
from tests.support.processes import wait_for


class FramesApp:
    """Accepts, then answers each client message with what a test asks ``write_frames`` to do,
    and records its answers."""

    def __init__(self) -> None:
        self.answers: list[bool] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            binary = message.get("bytes") is not None
            ask = (message.get("text") or message["bytes"].decode()).split()
            if ask[0] == "paused":  # as uvicorn marks a transport paused by flow control
                send.__self__.writable.clear()
                self.answers.append(write_frames(send, ["not", "now"], binary=binary))
                send.__self__.writable.set()
                await send({"type": "websocket.send", "text": "resumed"})
            elif ask[0] == "close":
                await send({"type": "websocket.close", "code": 1000})
                self.answers.append(write_frames(send, ["too", "late"], binary=binary))
            else:
                self.answers.append(write_frames(send, ask, binary=binary))


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "compressed"])
def frames_server(request):
    app = FramesApp()
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="on",
        ws=Worker.CONFIG_KWARGS["ws"],  # the protocol the service serves
        ws_per_message_deflate=request.param,
        log_config=None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=10, what="uvicorn to start")
    yield app, f"ws://127.0.0.1:{port}/", request.param
    server.should_exit = True
    thread.join(timeout=10)


def test_a_batch_arrives_as_its_messages_in_order_from_one_write(frames_server):
    app, url, compressed = frames_server
    with connect(url, compression="deflate" if compressed else None) as client:
        client.send("new fill")
        assert [client.recv(timeout=5), client.recv(timeout=5)] == ["new", "fill"]
    assert app.answers[-1] is True


def test_a_client_that_speaks_binary_gets_binary_frames(frames_server):
    app, url, compressed = frames_server
    with connect(url, compression="deflate" if compressed else None) as client:
        client.send(b"one two three")
        assert [client.recv(timeout=5) for _ in range(3)] == [b"one", b"two", b"three"]
    assert app.answers[-1] is True


def test_a_transport_paused_by_flow_control_is_left_to_asgi(frames_server):
    app, url, compressed = frames_server
    with connect(url, compression="deflate" if compressed else None) as client:
        client.send("paused")
        assert client.recv(timeout=5) == "resumed"  # "not" and "now" were never written
    assert app.answers[-1] is False


def test_a_closing_connection_is_left_to_asgi(frames_server):
    app, url, compressed = frames_server
    with connect(url, compression="deflate" if compressed else None) as client:
        client.send("close")
        with pytest.raises(ConnectionClosedOK):
            client.recv(timeout=5)  # the close, and nothing written after it
    wait_for(lambda: app.answers and app.answers[-1] is False, timeout=5, what="the app's answer")


def test_another_servers_send_writes_nothing():
    sent = []

    async def send(message):  # any ASGI server's, or Channels' test communicator's
        sent.append(message)

    assert write_frames(send, ["new", "fill"]) is False
    assert sent == []
