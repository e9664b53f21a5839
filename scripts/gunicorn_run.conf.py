"""gunicorn's settings under `make run` (scripts/run.sh): the production worker class
(portfolio_project/server.py), an access log that shows the API and admin requests, not every
static file the admin and Swagger UI load, and warnings only."""

import logging

worker_class = "portfolio_project.server.Worker"
accesslog = "-"
loglevel = "warning"
# gunicorn's runtime control socket is one path per user (~/.gunicorn/gunicorn.ctl), shared by
# every gunicorn of that user (two make runs, the fault suite), and closing it cost seconds
# of each Ctrl-C; make run has no use for it.
control_socket_disable = True


class SkipStaticFiles(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn logs each request as (client, method, path with query, HTTP version, status).
        args = record.args if isinstance(record.args, tuple) else ()
        return not (len(args) > 2 and str(args[2]).startswith("/static/"))


def post_worker_init(worker) -> None:
    # The worker hands uvicorn's access log to gunicorn's handlers (uvicorn_worker).
    logging.getLogger("uvicorn.access").addFilter(SkipStaticFiles())
