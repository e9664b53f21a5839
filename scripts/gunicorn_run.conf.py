"""gunicorn's settings under `make run` (scripts/run.sh): an access log that shows the API and
admin requests, not every static file the admin and Swagger UI load, and warnings only."""

import logging

accesslog = "-"
loglevel = "warning"
# gunicorn's runtime control socket is one path per user (~/.gunicorn/gunicorn.ctl), shared by
# every gunicorn of that user (two make runs, the fault suite), and closing it cost seconds
# of each Ctrl-C; make run has no use for it.
control_socket_disable = True


class SkipStaticFiles(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # gunicorn logs each request with its atoms as the record's args; "U" is the path.
        path = record.args.get("U", "") if isinstance(record.args, dict) else ""
        return not path.startswith("/static/")


def post_worker_init(worker) -> None:
    worker.log.access_log.addFilter(SkipStaticFiles())
