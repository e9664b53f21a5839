"""The stream clients of `make bench`'s streams phase (scripts/bench/run.py, docs/PERFORMANCE.md),
in a process of their own: ``python scripts/bench/streams.py trade|market PORT CREDENTIALS_FILE
PER_CREDENTIAL``.

- ``trade``: one connection per line of the file (an API token) times PER_CREDENTIAL, each
  authenticated with the token (``oauth_token``) and listening to trade updates. It keeps the
  receipt time of every ``fill`` (order id, epoch seconds), each connection's own.
- ``market``: the same number of market data connections (each line ``key_id:secret``), each
  subscribed to BTC/USD quotes, counting the quotes it receives.

It prints ``READY <connections>`` once every connection listens; each ``COUNT`` line on stdin
is answered ``COUNT <quotes> <fills> <closed>``; any other line (or EOF) ends the run, and it
prints ``RESULT <json>``: the counts, the fills' receipt times, and every connection
the server closed (code and reason: a slow client is 1008 "slow client").

Asyncio, one task per connection, and little work per message (fills alone are parsed), so
that 1,000 clients keep up on a shared machine.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

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
        self.all_ready = asyncio.Event()
        self.stop = asyncio.Event()

    async def client(self, credential: str) -> None:
        path = "/stream" if self.kind == "trade" else "/v1beta2/crypto"
        try:
            async with connect(f"ws://127.0.0.1:{self.port}{path}", open_timeout=60, max_queue=None) as ws:
                if self.kind == "trade":
                    await ws.send(json.dumps({"action": "authenticate", "data": {"oauth_token": credential}}))
                    assert '"authorized"' in await ws.recv(), "not authorized"
                    await ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
                    reply = await ws.recv()
                    assert '"listening"' in reply, f"not listening: {reply[:200]!r}"
                else:
                    await ws.recv()  # connected
                    key, secret = credential.split(":", 1)
                    await ws.send(json.dumps({"action": "auth", "key": key, "secret": secret}))
                    assert "authenticated" in await ws.recv(), "not authenticated"
                    await ws.send(json.dumps({"action": "subscribe", "quotes": ["BTC/USD"]}))
                    assert "subscription" in await ws.recv(), "not subscribed"
                self.ready += 1
                if self.ready == len(self.credentials):
                    self.all_ready.set()
                receiving = asyncio.ensure_future(self._receive(ws))
                stopping = asyncio.ensure_future(self.stop.wait())
                await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
                for task in (receiving, stopping):
                    task.cancel()
        except ConnectionClosed as closed:
            self.closed.append((closed.rcvd.code if closed.rcvd else None, closed.rcvd.reason if closed.rcvd else ""))
        except (OSError, AssertionError, TimeoutError) as error:
            self.failed.append(f"{type(error).__name__}: {error}")

    async def _receive(self, ws) -> None:
        try:
            async for message in ws:
                now = time.time()
                self.messages += 1
                if self.kind == "market":
                    self.quotes += message.count('"T":"q"')
                elif FILL in message:
                    data = json.loads(message)["data"]
                    self.fills.append((data["order"]["id"], now))
        except ConnectionClosed as closed:
            self.closed.append((closed.rcvd.code if closed.rcvd else None, closed.rcvd.reason if closed.rcvd else ""))

    async def run(self) -> dict:
        tasks = []
        for n, credential in enumerate(self.credentials):
            tasks.append(asyncio.ensure_future(self.client(credential)))
            if n % 50 == 49:
                await asyncio.sleep(0.05)  # a ramp, not 1,000 handshakes in one burst
        waiting = asyncio.ensure_future(self.all_ready.wait())
        await asyncio.wait({waiting, asyncio.gather(*tasks)}, timeout=120, return_when=asyncio.FIRST_COMPLETED)
        print(f"READY {self.ready}", flush=True)
        while True:  # "COUNT" asks for the counts so far; anything else (or EOF) ends the run
            line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            if line.strip() != "COUNT":
                break
            print(f"COUNT {self.quotes} {len(self.fills)} {len(self.closed)}", flush=True)
        self.stop.set()
        await asyncio.wait(tasks, timeout=30)
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


def main() -> None:
    kind, port, path, per = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    credentials = [line for line in open(path).read().splitlines() if line]  # noqa: SIM115
    result = asyncio.run(Clients(kind, port, credentials, per).run())
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
