"""One GET to a price provider, bounded by a total deadline (docs/DESIGN.md, "Prices and the price guard").

``requests`` bounds each wait for bytes (the read timeout), never the whole answer: a server
that sends one byte a second, or a status line a byte at a time, keeps a request alive for as
long as it likes, and three tries of a hung server cost three timeouts. Here the whole call,
retries and backoff included, has one deadline, enforced twice:

- the caller waits for the answer on a ``Future`` with the time left, so it gets its
  ``ProviderError`` at the deadline whatever the socket does (a slow DNS lookup, headers
  dripped a byte at a time);
- the worker thread that does the I/O caps each connect/read timeout to the time left, reads
  the body in small pieces as they arrive (``read1``) and checks the deadline after each,
  never sleeps past it, and stops retrying once the caller gave up. So a worker outlives its
  caller only while one recv is pending, by at most the read timeout.

The workers are a small pool per process (created after gunicorn forks). When every worker is
stuck on a dripping server, new calls queue and their callers still give up at their deadline;
the circuit breaker (``assets.price_breaker``) stops new calls soon after.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

import requests
import urllib3

BACKOFF_BASE_SECONDS = 0.2  # 0.2 s, then 0.4 s, 0.8 s, ...
MAX_RETRY_AFTER_SECONDS = 2  # a longer Retry-After is not worth holding a request for
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_BODY_BYTES = 1 << 20  # a price answer is a few hundred bytes a coin
READ_CHUNK_BYTES = 64 * 1024
WORKERS = 4

# What a network failure looks like from requests (connecting, headers) and from urllib3
# (reading the streamed body), retried like a timeout.
NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.HTTPError,
    OSError,
)


class ProviderError(Exception):
    """The provider could not answer at all (network, status, unreadable body, deadline)."""


_local = threading.local()
_pool_lock = threading.Lock()
_pool: tuple[int, ThreadPoolExecutor] | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        # A pool made before a fork has no threads in the child: make one per process.
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="price-provider"))
        return _pool[1]


def _thread_session() -> requests.Session:
    # One Session per worker thread: connection reuse without sharing a Session across threads.
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    return session


def get_within_deadline(
    url: str,
    *,
    params: dict[str, str],
    headers: dict[str, str],
    deadline_seconds: float,
    timeout_seconds: float,
    retries: int,
    label: str,
) -> bytes:
    """The body of a 200 answer to ``GET url``, within ``deadline_seconds``; raises ProviderError.

    Up to ``retries`` more tries after a network error or a status of RETRY_STATUSES, with
    backoff, while time is left. ``label`` names the provider in error messages.
    """
    call = _Call(
        url,
        params=params,
        headers=headers,
        deadline=time.monotonic() + deadline_seconds,
        timeout_seconds=timeout_seconds,
        retries=retries,
        label=label,
    )
    future: Future[bytes] = _executor().submit(_get_with_retries, call)
    try:
        return future.result(timeout=max(0.0, call.deadline - time.monotonic()))
    except FutureTimeout:
        call.gave_up.set()
        raise ProviderError(f"{label} gave no complete answer within {deadline_seconds:g} s.") from None


@dataclass(frozen=True)
class _Call:
    """One call as the worker thread sees it: what to ask, and when to stop. ``gave_up`` is set
    by the caller when it stops waiting, so the worker stops too."""

    url: str
    params: dict[str, str]
    headers: dict[str, str]
    deadline: float  # time.monotonic()
    timeout_seconds: float
    retries: int
    label: str
    gave_up: threading.Event = field(default_factory=threading.Event)


def _get_with_retries(call: _Call) -> bytes:
    label = call.label
    attempts = call.retries + 1
    for attempt in range(attempts):
        last = attempt == attempts - 1
        left = call.deadline - time.monotonic()
        if left <= 0 or call.gave_up.is_set():
            raise ProviderError(f"{label}: out of time after {attempt} attempt(s).")
        timeout = min(call.timeout_seconds, left)
        delay = BACKOFF_BASE_SECONDS * 2**attempt
        try:
            with _thread_session().get(
                call.url, params=call.params, headers=call.headers, timeout=(timeout, timeout), stream=True
            ) as response:
                if response.status_code == 200:
                    return _read_body(response, call)
                if response.status_code not in RETRY_STATUSES:
                    raise ProviderError(f"{label} answered HTTP {response.status_code}.")
                if last:
                    raise ProviderError(f"{label} answered HTTP {response.status_code} {attempts} time(s).")
                retry_after = _retry_after_seconds(response)
                if retry_after is not None:
                    if retry_after > MAX_RETRY_AFTER_SECONDS:
                        raise ProviderError(
                            f"{label} answered HTTP {response.status_code} and asks to retry after {retry_after} s."
                        )
                    delay = max(delay, retry_after)
        except ProviderError:
            raise
        except NETWORK_ERRORS as exc:
            if last:
                raise ProviderError(f"{label} unreachable after {attempts} attempt(s): {exc}") from exc
        except requests.RequestException as exc:
            raise ProviderError(f"{label} request failed: {exc}") from exc
        if time.monotonic() + delay >= call.deadline:
            raise ProviderError(f"{label}: no time left to retry after {attempt + 1} attempt(s).")
        call.gave_up.wait(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _read_body(response: requests.Response, call: _Call) -> bytes:
    # read1 returns what one recv brought instead of waiting for a whole chunk, so a server
    # dripping bytes is caught at its first byte past the deadline.
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() > call.deadline or call.gave_up.is_set():
            raise ProviderError(f"{call.label} answered too slowly ({size} bytes by the deadline).")
        chunk = response.raw.read1(READ_CHUNK_BYTES, decode_content=True)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ProviderError(f"{call.label} answered more than {MAX_BODY_BYTES} bytes.")
        chunks.append(chunk)


def _retry_after_seconds(response: requests.Response) -> int | None:
    value = response.headers.get("Retry-After", "").strip()
    return int(value) if value.isdigit() else None  # the HTTP-date form falls back to our own backoff
