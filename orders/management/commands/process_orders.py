import signal
import time

from django.core.management.base import BaseCommand

from orders.services import process_resting_orders


class Command(BaseCommand):
    help = "Fill resting limit orders the market price crosses and expire old ones. Safe to run several at once."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Run one pass and exit.")
        parser.add_argument("--interval", type=float, default=2.0, help="Seconds between passes (default 2).")

    def handle(self, *args, once: bool, interval: float, verbosity: int, **options):
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        while True:
            started = time.monotonic()
            progress = self._progress if verbosity > 1 else None
            report = process_resting_orders(progress=progress)
            if once or verbosity > 1 or report.filled or report.expired:
                self.stdout.write(
                    f"filled {report.filled}, expired {report.expired}, skipped {report.skipped} "
                    f"in {time.monotonic() - started:.2f}s"
                )
            if once or stopping:
                return
            deadline = time.monotonic() + interval
            while not stopping and time.monotonic() < deadline:
                time.sleep(0.1)
            if stopping:
                return

    def _progress(self, report) -> None:
        done = report.filled + report.skipped
        if done and done % 1000 == 0:
            self.stdout.write(f"  ... {report.filled} filled, {report.skipped} skipped")
