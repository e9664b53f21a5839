#!/usr/bin/env bash
# `make run`: migrate, seed, make sure an admin login exists, then serve the API and admin
# with the order processor beside it. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PORT="${PORT:-8000}"

# Without DATABASE_URL, settings start the embedded PostgreSQL; stop it on exit if this run started it.
started_db=0
if [ -z "${DATABASE_URL:-}" ] && ! $PY -m portfolio_project.embedded_db status; then
    started_db=1
fi

$PY manage.py migrate --no-input -v 0
$PY manage.py seed_assets
$PY manage.py ensure_admin
# A key for Alpaca's SDK (examples/alpaca_bot.py reads it): SPEC 12.
alpaca_key=$($PY manage.py alpaca_demo_key)

pids=()
cleanup() {
    trap - INT TERM EXIT
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "$started_db" = 1 ]; then $PY -m portfolio_project.embedded_db stop || true; fi
    echo "stopped."
}
trap cleanup INT TERM EXIT

$PY manage.py process_orders --interval 2 &
pids+=($!)
.venv/bin/gunicorn portfolio_project.wsgi:application \
    --bind "127.0.0.1:${PORT}" --workers "${WEB_WORKERS:-3}" --access-logfile - --log-level warning &
pids+=($!)

sleep 1
cat <<MSG

  API:      http://127.0.0.1:${PORT}/api/v1/
  Docs:     http://127.0.0.1:${PORT}/api/v1/docs/
  Admin:    http://127.0.0.1:${PORT}/admin/
  Health:   http://127.0.0.1:${PORT}/api/v1/health/
  $(cat .data/admin-login.txt)
  Alpaca:   http://127.0.0.1:${PORT}/v2/ (${alpaca_key#Alpaca:   }); try examples/alpaca_bot.py

  Ctrl-C stops the server and the order processor.
MSG
wait -n "${pids[@]}"
