"""Racing real threads, each with its own database connection (closed when it ends)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import connection


def run_concurrently(*calls: Callable[[], object]) -> list[object]:
    """Start every call at once (a barrier) in its own thread; return each result or exception."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def run(index: int, call: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = call()
        except Exception as error:  # handed back to the test, which asserts on it
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck (deadlock?)"
    return results
