"""Anonymous market-data clients for tests/alpaca_compat/test_market_data_isolation.py, run as a
process of their own (so that their threads share no interpreter lock with the test's
measurements): ``python -m tests.alpaca_compat.anonymous_clients URL THREADS SECONDS``.

Each thread asks URL in a loop, as a program without a key polling bars would; on a 429 it
waits what Retry-After says, at most a second, then asks again (alpaca-py and CCXT back off on
429 too). At the end it prints one JSON line: the status codes answered, counted.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter

import requests


def ask(url: str, until: float, counts: Counter, lock: threading.Lock) -> None:
    with requests.Session() as session:
        while time.monotonic() < until:
            try:
                response = session.get(url, timeout=30)
            except requests.RequestException:
                status = "error"
                wait = 0.1
            else:
                status = response.status_code
                wait = min(float(response.headers.get("Retry-After", 1)), 1.0) if status == 429 else 0
            with lock:
                counts[status] += 1
            time.sleep(wait)


def main() -> None:
    url, threads, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    until = time.monotonic() + seconds
    counts: Counter = Counter()
    lock = threading.Lock()
    workers = [threading.Thread(target=ask, args=(url, until, counts, lock)) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print(json.dumps({str(status): count for status, count in counts.items()}))


if __name__ == "__main__":
    main()
