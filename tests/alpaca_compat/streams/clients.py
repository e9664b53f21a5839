"""The stream tests' clients: alpaca-py's streams run on a thread for a ``with`` block, and a
WebSocket client that reads only when told to (websockets' sans-I/O protocol over a plain
socket with a tiny receive buffer), the slow client."""

from __future__ import annotations

import asyncio
import socket
import threading
from contextlib import contextmanager

from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri


class StalledClient:
    def __init__(self, url: str, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(5)
        self.sock.connect(("127.0.0.1", port))
        self.protocol = ClientProtocol(parse_uri(url))
        self.protocol.send_request(self.protocol.connect())
        self._flush()
        while not any(isinstance(event, Response) for event in self._receive()):
            pass

    def send_text(self, text: str) -> None:
        self.protocol.send_text(text.encode())
        self._flush()

    def read_until_closed(self) -> tuple[list[str], Close | None]:
        """Read at last: every message the server sent, and its close frame."""
        messages: list[str] = []
        while True:
            for event in self._receive():
                if isinstance(event, Frame) and event.opcode in (Opcode.TEXT, Opcode.BINARY):
                    messages.append(event.data.decode())
                elif isinstance(event, Frame) and event.opcode == Opcode.CLOSE:
                    self.sock.close()
                    return messages, Close.parse(event.data)

    def _receive(self) -> list:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection without a close frame")
        self.protocol.receive_data(data)
        self._flush()  # pongs, the close handshake
        return self.protocol.events_received()

    def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.sock.sendall(data)


@contextmanager
def running(stream):
    """Run an alpaca-py stream (``TradingStream``, ``CryptoDataStream``) on a thread of its own
    for the ``with`` block, then stop it at once: alpaca-py's ``stop()`` alone is noticed only
    at its next read, up to five seconds later, so its socket is closed too."""
    runner = threading.Thread(target=stream.run, daemon=True)
    runner.start()
    try:
        yield stream
    finally:
        loop = stream._loop
        if loop is not None and loop.is_running():
            stream.stop()
            closing = stream.close()
            try:
                asyncio.run_coroutine_threadsafe(closing, loop).result(5)
            except (RuntimeError, TimeoutError):  # it ended meanwhile
                closing.close()
        runner.join(timeout=10)
        assert not runner.is_alive(), "alpaca-py's stream did not stop"
