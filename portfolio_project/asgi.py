"""The application the server runs (``portfolio_project.asgi:application``, served by the worker
of ``portfolio_project/server.py``): Django's views over HTTP, and the WebSocket streams on the
same port (docs/DESIGN.md, "Serving").

Django's own ASGI handler would serve the sync views too, but in a way that costs this service
what it measured. It runs each request's sync code on a thread of its own, so each request opens
a new PostgreSQL connection (connections are per thread: ``CONN_MAX_AGE`` keeps nothing, and
the statements prepared on a connection are prepared again every time); in a copy of the event
loop's context, so each request builds its cache backends anew (``caches`` are per context:
~1 ms of CPU a request with Redis); and with only sync middleware a request crosses between the
event loop and a thread four times.

``DjangoHTTP`` keeps what it must from Django's handler: the request body is read in the event
loop, so a slow or idle client holds a coroutine, never a thread. Everything sync, from
``request_started`` to ``request_finished``, then runs in one call on one of a few long-lived
threads per process (``WEB_THREADS``), each with its own persistent database connection and its
own context (cache clients, translations) kept from one request to the next: what a sync
worker's one thread had.

The lifespan protocol stops this process's stream hub (alpaca_compat/streams/hub.py) when the
server shuts down: its LISTEN session and its database thread's connection close cleanly.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import gc
import os
from concurrent.futures import ThreadPoolExecutor

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portfolio_project.settings")
django.setup(set_prefix=False)  # as django.core.asgi.get_asgi_application() does

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core import signals  # noqa: E402
from django.core.exceptions import RequestAborted  # noqa: E402
from django.core.handlers.asgi import ASGIHandler, get_script_prefix  # noqa: E402
from django.http import FileResponse  # noqa: E402
from django.urls import get_resolver, set_script_prefix  # noqa: E402

from alpaca_compat.streams.hub import stop_hub  # noqa: E402
from portfolio_project.urls import websocket_urlpatterns  # noqa: E402

# A streamed response (an admin CSV export) is pulled from its iterator in batches of about
# this many bytes, each batch one call on the request's thread.
STREAM_BATCH_BYTES = 2**16


class RequestThread:
    """One thread, and the context every call on it runs in (as a sync worker's thread keeps its
    own from one request to the next)."""

    def __init__(self, number: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"request-{number}")
        self._context = contextvars.Context()

    async def run(self, function, *args):
        # One call at a time (one thread), so the context is never entered twice at once.
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._context.run, function, *args)


class RequestThreads:
    """At most ``size`` threads per process run requests' sync code, each request on one thread
    from its start to its end, so that a thread's database connection is only ever used by it.
    A request that finds them all busy waits in the event loop, as a coroutine. The most recently
    freed thread is taken first: under light load one thread, with its warm connection, serves."""

    def __init__(self, size: int | None = None) -> None:
        self._size = size
        self._free: list[RequestThread] = []
        self._started = 0
        self._waiting: collections.deque[asyncio.Future] = collections.deque()

    @property
    def size(self) -> int:
        # Read at the first request, in the server's process (threads do not survive a fork).
        if self._size is None:
            self._size = max(1, settings.WEB_THREADS)
        return self._size

    async def acquire(self) -> RequestThread:
        if self._free:
            return self._free.pop()
        if self._started < self.size:
            self._started += 1
            return RequestThread(self._started)
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result())
            raise

    def release(self, thread: RequestThread) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(thread)
                return
        self._free.append(thread)


class DjangoHTTP(ASGIHandler):
    """Django's ASGI handler, serving the sync middleware and views as a sync worker does: on a
    long-lived thread with a persistent database connection, in one hop from the event loop."""

    def __init__(self, threads: RequestThreads) -> None:
        super().__init__()
        self.threads = threads

    def load_middleware(self, is_async=False):
        # The sync chain, as under WSGI: every middleware here is sync, and an async chain would
        # hop from the thread to the event loop and back around the view.
        super().load_middleware(is_async=False)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        try:
            # In the event loop: a client that sends its body slowly, or never, holds no thread.
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        thread = await self.threads.acquire()
        try:
            await self._serve(thread, scope, body_file, receive, send)
        finally:
            self.threads.release(thread)

    async def _serve(self, thread: RequestThread, scope, body_file, receive, send) -> None:
        try:
            response = await thread.run(self._respond, scope, body_file)
            if not response.streaming:
                await self.send_response(response, send)
                return
            try:
                await self._send_streaming(thread, response, receive, send)
            finally:
                await thread.run(response.close)
        finally:
            body_file.close()

    def _respond(self, scope, body_file):
        """What Django's handler does around the view, on the request's thread."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
        response._handler_class = self.__class__
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
        if not response.streaming:
            # The body is in memory: request_finished (which ends or keeps this thread's database
            # connection) may run before it is sent, in the same call.
            response.close()
        return response

    async def _send_streaming(self, thread: RequestThread, response, receive, send) -> None:
        # Django's handler would read a sync iterator whole into memory (and warn); an export of
        # a ledger is streamed instead, pulled in batches on the request's thread (whose
        # connection its server-side cursor is on), and no longer once the client is gone.
        await send({"type": "http.response.start", "status": response.status_code, "headers": _headers(response)})
        disconnected = asyncio.ensure_future(receive())  # the body is read: the next message is a disconnect
        try:
            chunks = iter(response)
            while not disconnected.done() and (batch := await thread.run(_next_batch, chunks)):
                for part in batch:
                    for chunk, _ in self.chunk_bytes(part):
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body"})
        finally:
            disconnected.cancel()


def _next_batch(chunks) -> list[bytes]:
    batch, size = [], 0
    for chunk in chunks:
        batch.append(chunk)
        size += len(chunk)
        if size >= STREAM_BATCH_BYTES:
            break
    return batch


def _headers(response) -> list[tuple[bytes, bytes]]:
    headers = [(name.encode("ascii"), value.encode("latin1")) for name, value in response.items()]
    cookies = [cookie.output(header="").encode("ascii").strip() for cookie in response.cookies.values()]
    return headers + [(b"Set-Cookie", cookie) for cookie in cookies]


async def lifespan(scope, receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await stop_hub()
            await send({"type": "lifespan.shutdown.complete"})
            return


application = ProtocolTypeRouter(
    {
        "http": DjangoHTTP(RequestThreads()),
        # The streams share the API's port: their routes are in portfolio_project/urls.py.
        "websocket": URLRouter(websocket_urlpatterns),
        "lifespan": lifespan,
    }
)

get_resolver().url_patterns  # imports every view now rather than in the first request  # noqa: B018
# As in wsgi.py: what is loaded by now lives as long as the process; frozen, it is left out of
# every garbage collection (a full one scanned it in ~50 ms, the slowest requests' p99).
gc.collect()
gc.freeze()
