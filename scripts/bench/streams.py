"""The stream clients of `make bench`'s streams phase (scripts/bench/run.py, docs/PERFORMANCE.md),
in a process of their own: ``python scripts/bench/streams.py trade|market PORT CREDENTIALS_FILE
PER_CREDENTIAL``.

- ``trade``: one connection per line of the file (an API token) times PER_CREDENTIAL, each
  authenticated with the token (``oauth_token``) and listening to trade updates. It keeps the
  receipt time of every ``fill`` (order id, epoch seconds), each connection's own.
- ``market``: the same number of market data connections (each line ``key_id:secret``), each
  subscribed to BTC/USD quotes, counting the quotes it receives.

It prints ``READY <connections listening>`` once every connection listens or has failed; each
``COUNT`` line on stdin is answered ``COUNT <quotes> <fills> <closed>``; any other line (or
EOF) ends the run, and it prints ``RESULT <json>``: the counts, the fills' receipt times, and
every connection the server closed (code and reason: a slow client is 1008 "slow client").

The clients are load, not the thing measured, and they share the server's two cores: each
connection is an asyncio protocol over websockets' Sans-I/O client (``ClientProtocol``), which
reads every frame that arrives in one ``data_received`` call, without a task, a queue or a
wake-up per message, on uvloop's event loop (the servers' own); fills alone are parsed (with
orjson, as the servers write them). That keeps their own CPU per message small (it is reported
beside the server's) and lets 1,000 of them keep up on a shared machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import uvloop
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

FILL = '"event":"fill"'


class Clients:
    def __init__(self, kind: str, port: int, credentials: list[str], per_credential: int) -> None:
        self.kind, self.port = kind, port
        self.credentials = [c for c in credentials for _ in range(per_credential)]
        self.ready = 0
        self.messages = 0
        self.quotes = 0
        self.fills: list[tuple[str, float]] = []
        self.closed: list[tuple[int | None, str]] = []
        self.failed: list[str] = []
        self.given_up = 0
        self.all_ready = asyncio.Event()  # every connection ready, or given up
        self.connections: list[Client] = []

    def became_ready(self) -> None:
        self.ready += 1
        self._settled()

    def gave_up(self) -> None:
        """A connection failed or was closed before it was ready: READY need not wait for it."""
        self.given_up += 1
        self._settled()

    def _settled(self) -> None:
        if self.ready + self.given_up == len(self.credentials):
            self.all_ready.set()

    async def run(self) -> dict:
        loop = asyncio.get_running_loop()
        path = "/stream" if self.kind == "trade" else "/v1beta2/crypto"
        for n, credential in enumerate(self.credentials):
            client = Client(self, credential, f"ws://127.0.0.1:{self.port}{path}")
            self.connections.append(client)
            try:
                await loop.create_connection(lambda client=client: client, "127.0.0.1", self.port)
            except OSError as error:
                self.failed.append(f"{type(error).__name__}: {error}")
                self.gave_up()
            if n % 50 == 49:
                await asyncio.sleep(0.05)  # a ramp, not 1,000 handshakes in one burst
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.all_ready.wait(), timeout=120)
        print(f"READY {self.ready}", flush=True)
        while True:  # "COUNT" asks for the counts so far; anything else (or EOF) ends the run
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if line.strip() != "COUNT":
                break
            print(f"COUNT {self.quotes} {len(self.fills)} {len(self.closed)}", flush=True)
        for client in self.connections:
            client.stop()
        return {
            "connections": len(self.credentials),
            "ready": self.ready,
            "messages": self.messages,
            "quotes": self.quotes,
            "fills": self.fills,
            "closed": self.closed,
            "failed": self.failed[:20],
            "failed_count": len(self.failed),
        }


class Client(asyncio.Protocol):
    """One connection: the handshake, then the stream's own authentication and subscription
    (one reply awaited at a time), then counting what arrives."""

    def __init__(self, clients: Clients, credential: str, uri: str) -> None:
        self.clients, self.credential = clients, credential
        self.ws = ClientProtocol(parse_uri(uri), max_size=None)
        self.transport: asyncio.Transport | None = None
        self.expect: str | None = None  # the reply that moves the conversation on
        self.listening = False
        self.stopping = False

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.ws.send_request(self.ws.connect())
        self._flush()

    def _flush(self) -> None:
        for data in self.ws.data_to_send():
            if data:
                self.transport.write(data)
            else:  # the protocol wants the connection half-closed: the close handshake is done
                self.transport.close()

    def _send(self, message: dict, expect: str) -> None:
        self.expect = expect
        self.ws.send_text(json.dumps(message).encode())

    def data_received(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if self.stopping:  # failed on an earlier message of this batch: counted once, and closed
                return
            if isinstance(event, Response):
                if event.status_code != 101:
                    self._fail(f"handshake answered {event.status_code}")
                elif self.clients.kind == "trade":
                    self._send({"action": "authenticate", "data": {"oauth_token": self.credential}}, '"authorized"')
                else:
                    self.expect = "connected"
            elif isinstance(event, Frame) and event.opcode == Opcode.TEXT:
                self._message(event.data.decode())
            elif isinstance(event, Frame) and event.opcode == Opcode.BINARY:
                self._message(event.data.decode(errors="replace"))
        self._flush()

    def _message(self, text: str) -> None:
        clients = self.clients
        if self.listening:
            clients.messages += 1
            if clients.kind == "market":
                clients.quotes += text.count('"T":"q"')
            elif FILL in text:
                clients.fills.append((orjson.loads(text)["data"]["order"]["id"], time.time()))
            return
        if self.expect not in text:
            self._fail(f"expected {self.expect}, got {text[:200]!r}")
        elif self.expect == '"authorized"':
            self._send({"action": "listen", "data": {"streams": ["trade_updates"]}}, '"listening"')
        elif self.expect == "connected":
            key, secret = self.credential.split(":", 1)
            self._send({"action": "auth", "key": key, "secret": secret}, "authenticated")
        elif self.expect == "authenticated":
            self._send({"action": "subscribe", "quotes": ["BTC/USD"]}, "subscription")
        else:  # listening, or subscribed
            self.listening = True
            clients.became_ready()

    def _fail(self, reason: str) -> None:
        self.clients.failed.append(reason)
        self.stopping = True
        self.transport.close()
        self.clients.gave_up()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.stopping:
            return
        if not self.listening:
            self.clients.gave_up()
        close = self.ws.close_rcvd
        if close is not None:
            self.clients.closed.append((close.code, close.reason))
        elif exc is not None:
            self.clients.failed.append(f"{type(exc).__name__}: {exc}")
        else:
            self.clients.closed.append((None, ""))

    def stop(self) -> None:
        self.stopping = True
        if self.transport is not None and not self.transport.is_closing():
            self.ws.send_close()
            self._flush()
            self.transport.close()


class ClientsProcess:
    """This script in a child process, and the other side of its protocol: ``READY`` (the
    connections listening), ``COUNT`` and ``STOP``/``RESULT``. make bench and the tests drive
    the clients through it."""

    def __init__(self, kind: str, port: int, credentials: Path, per_credential: int) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - this very script
            [sys.executable, __file__, kind, str(port), str(credentials), str(per_credential)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.started = time.monotonic()
        self.ready = 0
        self.connect_seconds = 0.0

    def wait_ready(self) -> int:
        """Wait for READY: every connection listening, or given up. Answers how many listen."""
        self.ready = int(self._line("READY"))
        self.connect_seconds = time.monotonic() - self.started
        return self.ready

    def _line(self, prefix: str) -> str:
        for line in self.proc.stdout:
            if line.startswith(prefix + " "):
                return line[len(prefix) + 1 :].strip()
        raise RuntimeError(f"the stream clients ended before {prefix}")

    def count(self) -> tuple[int, int, int]:
        """(quotes, fills, connections closed by the server) so far."""
        self.proc.stdin.write("COUNT\n")
        self.proc.stdin.flush()
        quotes, fills, closed = self._line("COUNT").split()
        return int(quotes), int(fills), int(closed)

    def finish(self) -> dict:
        self.proc.stdin.write("STOP\n")
        self.proc.stdin.flush()
        line = self._line("RESULT")
        try:
            result = json.loads(line)
        except ValueError as error:
            raise RuntimeError(f"the stream clients' RESULT is not JSON ({error}): ...{line[-300:]!r}") from error
        self.proc.wait(timeout=60)
        return result

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def main() -> None:
    kind, port, path, per = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    credentials = [line for line in open(path).read().splitlines() if line]  # noqa: SIM115
    result = uvloop.run(Clients(kind, port, credentials, per).run())
    # libuv may leave the pipe non-blocking: written through print, the long last line could be
    # cut where the pipe filled. Written whole, in blocking mode, straight to the descriptor.
    sys.stdout.flush()
    os.set_blocking(sys.stdout.fileno(), True)
    line = memoryview(("RESULT " + json.dumps(result) + "\n").encode())
    while line:
        line = line[os.write(sys.stdout.fileno(), line) :]


if __name__ == "__main__":
    main()
