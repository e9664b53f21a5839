#!/usr/bin/env bash
# `make run`: migrate, seed, make sure an admin login exists, then serve the API and admin
# with the order processor beside it. Ctrl-C stops both (exit 0).
#
# It refuses, before starting or stopping anything, when its port is taken or when another
# `make run` uses the same embedded database (a lock next to the data directory). A crashed
# order processor is restarted with backoff; the web server keeps serving meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PORT="${PORT:-8000}"
HOST=127.0.0.1

refuse() {
    echo "make run: $*" >&2
    exit 1
}

# --- Refusals: nothing is started before these pass. ---------------------------------
# SO_REUSEADDR as gunicorn sets it: a port only in TIME_WAIT is free, a listening one is not.
if ! $PY -c '
import socket, sys
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    sock.bind((sys.argv[1], int(sys.argv[2])))
except OSError:
    sys.exit(1)
' "$HOST" "$PORT"; then
    refuse "port $PORT on $HOST is already in use (another make run?). Stop that, or choose another port: PORT=8001 make run"
fi

started_db=0
if [ -z "${DATABASE_URL:-}" ]; then
    # The embedded database: one make run at a time may own it, or the second one's Ctrl-C
    # would stop the first one's database. The lock is released when this script exits,
    # however it exits; no child inherits it (9>&- below), so a server left running does not
    # keep it.
    data_dir=$($PY -m portfolio_project.embedded_db path)
    mkdir -p "$(dirname "$data_dir")"
    lock="$data_dir.run.lock"
    exec 9<>"$lock"
    if command -v flock >/dev/null && ! flock -n 9; then
        refuse "the embedded database in $data_dir is in use by another make run (pid $(head -c 20 "$lock")). Stop that one first, or give this one its own: EMBEDDED_PG_DIR=/some/dir PORT=8001 make run"
    fi
    echo $$ >"$lock"
    # Pre-start check, not an error: settings start the server when it is not running, and
    # this run stops it on exit only if it started it.
    if ! $PY -m portfolio_project.embedded_db status >/dev/null 9>&-; then
        started_db=1
    fi
fi

# --- Stop everything on Ctrl-C, TERM, or any failure below. ---------------------------
web=""
supervisor=""
shutdown() {
    local code=$1
    trap - INT TERM HUP EXIT
    if [ -n "$supervisor" ]; then kill -TERM "$supervisor" 2>/dev/null || true; fi
    if [ -n "$web" ]; then kill -TERM "$web" 2>/dev/null || true; fi
    wait 2>/dev/null || true
    if [ "$started_db" = 1 ]; then $PY -m portfolio_project.embedded_db stop 9>&- || true; fi
    echo "stopped."
    exit "$code"
}
trap 'shutdown 0' INT TERM HUP
trap 'shutdown $?' EXIT

# migrate, seed_assets, ensure_admin, and a key for Alpaca's SDK with this server's URL
# (examples/alpaca_bot.py reads both): in one interpreter, as each Django start costs seconds.
# The key's line is this step's output; the banner below shows it and the admin login, once.
alpaca_key=$(DJANGO_SETTINGS_MODULE=portfolio_project.settings $PY -c '
import io
import sys
import django
from django.core.management import call_command
django.setup()
call_command("migrate", interactive=False, verbosity=0)
call_command("seed_assets", stdout=sys.stderr)
call_command("ensure_admin", stdout=io.StringIO())
call_command("alpaca_demo_key", base_url=sys.argv[1])
' "http://$HOST:$PORT" 9>&-)

# Children run in sessions of their own, so Ctrl-C reaches only this script, which stops
# them with TERM: gunicorn then shuts down gracefully instead of its SIGINT quick shutdown
# (SIGQUIT to every worker), and the processor finishes its pass.
detach() {
    if command -v setsid >/dev/null; then exec setsid "$@"; else exec "$@"; fi
}

# The order processor, restarted when it exits (a crash, a kill) with backoff: 1 s,
# doubling to 30 s, back to 1 s after a run of a minute or more.
supervise_processor() {
    local delay=1 child="" pause="" status started
    # Ctrl-C is for the script, which stops this loop with TERM.
    trap '' INT HUP
    trap 'kill -TERM $child $pause 2>/dev/null || true; wait; exit 0' TERM
    while true; do
        started=$SECONDS
        detach $PY manage.py process_orders --interval 2 9>&- &
        child=$!
        status=0
        wait "$child" || status=$?
        child=""
        if ((SECONDS - started >= 60)); then delay=1; fi
        echo "make run: the order processor exited (status $status); restarting it in ${delay}s" >&2
        sleep "$delay" &
        pause=$!
        wait "$pause" || true
        pause=""
        delay=$((delay * 2 > 30 ? 30 : delay * 2))
    done
}
supervise_processor 9>&- &
supervisor=$!

# The production server (README, "Running in production"): gunicorn with the worker class of
# portfolio_project/server.py, so that slow or idle clients cannot take its workers.
detach .venv/bin/gunicorn portfolio_project.asgi:application -c scripts/gunicorn_run.conf.py \
    --bind "$HOST:$PORT" --workers "${WEB_WORKERS:-3}" 9>&- &
web=$!

# The banner only once the server listens; if it died instead (the port was taken after
# all), say so and stop.
for _ in $(seq 1 300); do
    if ! kill -0 "$web" 2>/dev/null; then
        echo "make run: the web server did not start (see above)" >&2
        exit 1
    fi
    if (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; then break; fi
    sleep 0.1
done
cat <<MSG

  API:      http://$HOST:${PORT}/api/v1/
  Docs:     http://$HOST:${PORT}/api/v1/docs/
  Admin:    http://$HOST:${PORT}/admin/
  Health:   http://$HOST:${PORT}/api/v1/health/
  $(cat .data/admin-login.txt)
  Alpaca:   http://$HOST:${PORT}/v2/ (${alpaca_key#Alpaca:   }); try make bot
  Streams:  ws://$HOST:${PORT}/stream (trade updates), ws://$HOST:${PORT}/v1beta3/crypto/us (market data)

  Ctrl-C stops the server and the order processor.
MSG
status=0
wait "$web" || status=$?
echo "make run: the web server exited (status $status)" >&2
exit 1
