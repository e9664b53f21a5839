import contextlib
import logging
import random
import signal
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, close_old_connections, connections

from assets.prices import refresh_market_prices
from orders.services import DATABASE_UNREACHABLE, FailingOrders, process_resting_orders

logger = logging.getLogger("orders.process_orders")

FIRST_BACKOFF_SECONDS = 0.5


class Command(BaseCommand):
    help = (
        "Fill resting limit orders the market price crosses and expire old ones. Safe to run several at once. "
        "Survives database and cache outages: a failed pass is logged and retried with backoff."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Run one pass and exit (non-zero if it fails).")
        parser.add_argument("--interval", type=float, default=2.0, help="Seconds between passes (default 2).")
        parser.add_argument(
            "--max-backoff",
            type=float,
            default=10.0,
            help="Longest wait between passes that keep failing (default 10 s).",
        )

    def handle(self, *args, once: bool, interval: float, max_backoff: float, verbosity: int, **options):
        self.stopping = False
        self.failing = FailingOrders()  # kept across passes: a poison order is logged once a minute

        def stop(signum, frame):
            self.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        failures = 0
        while True:
            started = time.monotonic()
            try:
                report = self._pass(verbosity)
            except Exception as error:
                # A daemon must outlive any one pass: a restarting database, an unreachable or
                # frozen cache, a provider outage. Nothing of a failed pass is half-done (each
                # order is its own transaction), so it is logged and the next pass retries.
                if once:
                    raise CommandError(f"the pass failed: {error.__class__.__name__}: {error}") from error
                failures += 1
                wait = self._backoff(failures, max_backoff)
                self._log_failure(error, failures, wait)
                self._sleep(wait)
            else:
                if failures:
                    logger.warning("process_orders: recovered after %d failed passes", failures)
                    failures = 0
                # A pass whose only news is an order failing again, unlogged, prints nothing.
                if once or verbosity > 1 or report.filled or report.expired or report.failures_logged:
                    failed = f", failed {report.failed}" if report.failed else ""
                    self.stdout.write(
                        f"filled {report.filled}, expired {report.expired}, skipped {report.skipped}{failed} "
                        f"in {time.monotonic() - started:.2f}s"
                    )
                if once:
                    return
                self._sleep(interval)
            if self.stopping:
                return

    def _pass(self, verbosity: int):
        # Outside a request nothing recycles connections: drop one that is broken or past
        # CONN_MAX_AGE before the pass instead of failing on it.
        close_old_connections()
        progress = self._progress if verbosity > 1 else None
        refresh_market_prices()  # every active asset priced and recorded (docs/DESIGN.md, "Prices and the price guard")
        return process_resting_orders(progress=progress, failing=self.failing)

    @staticmethod
    def _backoff(failures: int, max_backoff: float) -> float:
        # Bounded exponential, with jitter so that several processors do not retry in step.
        ceiling = min(max_backoff, FIRST_BACKOFF_SECONDS * 2 ** (failures - 1))
        return ceiling * random.uniform(0.5, 1.0)

    def _log_failure(self, error: Exception, failures: int, wait: float) -> None:
        if isinstance(error, DATABASE_UNREACHABLE):
            # The connection is dead (a restart, a failover): close it so the next pass opens
            # a fresh one instead of failing on the stale one again.
            for conn in connections.all(initialized_only=True):
                # Closing a broken connection may itself fail; it is dropped all the same.
                with contextlib.suppress(DatabaseError):
                    conn.close()
            what = "database unavailable"
        else:
            what = "pass failed"
        message = "process_orders: %s (%s: %s); retry %d in %.1fs"
        first_line = next(iter(str(error).strip().splitlines()), "")
        args = (what, error.__class__.__name__, first_line, failures, wait)
        if failures == 1 and not isinstance(error, DATABASE_UNREACHABLE):
            logger.exception(message, *args)  # an unexpected error: its traceback, once
        else:
            logger.warning(message, *args)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def _progress(self, report) -> None:
        done = report.filled + report.skipped
        if done and done % 1000 == 0:
            self.stdout.write(f"  ... {report.filled} filled, {report.skipped} skipped")
