"""A real primary and streaming replica (the embedded PostgreSQL binaries), a Redis and two
gunicorn instances configured with ``DATABASE_REPLICA_URLS``, started once for the session on
free loopback ports (scripts/cluster/nodes.py). These tests talk HTTP to the instances and SQL
to the two servers; they use no Django test database."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from scripts.cluster import nodes
from tests.support.processes import require_program

# Users made straight through the services (no HTTP request, so no read-your-writes pin):
# their reads may go to the replica from the first request on.
SETUP_SCRIPT = """
import json
from django.core.management import call_command
call_command("migrate", verbosity=0)
call_command("seed_assets", verbosity=0)
from decimal import Decimal
from django.contrib.auth import get_user_model
from django.test import Client
from accounts.services import create_api_key
from balances import services as balances
from orders import services as orders
from orders.validation import OrderRequest
out = []
for name in {names!r}:
    user, token = balances.register_user(username=name, password="correct-horse-battery-42")
    balances.deposit(user=user, amount=Decimal("250.00"), client_reference=name + "-seed")
    orders.place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.0001")))
    key = create_api_key(user=user, name="cluster test")  # made here, no write over HTTP to pin the user
    out.append({{"username": name, "id": user.pk, "token": token.key, "key": [key.api_key.key_id, key.secret_key]}})
staff = get_user_model().objects.create_user(username="{staff}", password="x", is_staff=True, is_superuser=True)
client = Client()
client.force_login(staff)
print(json.dumps({{"users": out, "staff_session": client.cookies["sessionid"].value}}))
"""

DEPOSIT_SCRIPT = """
from decimal import Decimal
from django.contrib.auth import get_user_model
from balances import services
services.deposit(user=get_user_model().objects.get(pk={user_id}), amount=Decimal("{amount}"), client_reference="{ref}")
"""


@dataclass
class ReplicaCluster:
    base: Path
    primary: nodes.Postgres
    replica: nodes.Postgres
    env: dict
    apps: list[str]  # base URLs of the two gunicorn instances
    strict_app: str  # a third instance that skips a replica more than 1 s behind
    redis: nodes.Process
    users: list[dict]
    staff_session: str

    def api(self, app: int, path: str) -> str:
        return f"{self.apps[app]}/api/v1/{path}"

    def manage_shell(self, code: str) -> str:
        done = nodes.manage("shell", "-c", code, env=self.env)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def replica_log(self) -> str:
        return self.replica.log.read_text(errors="replace")

    def caught_up(self) -> None:
        nodes.wait_replica_caught_up(self.primary, self.replica)


def get(url: str, token: str | None = None, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Token {token}"} if token else {}
    return requests.get(url, headers=headers, timeout=10, **kwargs)


@pytest.fixture(scope="session")
def replica_cluster():
    require_program("redis-server")
    base = Path(tempfile.mkdtemp(prefix="portfolio-replicas-"))
    cluster = nodes.Cluster(base, keep=os.environ.get("CLUSTER_KEEP") == "1")  # keep: logs to read
    try:
        primary = cluster.primary()
        # Every statement the replica runs is logged: the tests read it to see who served.
        replica = cluster.replica(primary, extra_conf="log_statement = 'all'")
        redis_process, redis_port = nodes.redis(base)
        cluster.adopt(redis_process)
        primary.sql("CREATE DATABASE portfolio")
        env = nodes.django_env(DATABASE_URL=primary.url("portfolio"), CACHE_URL=f"redis://127.0.0.1:{redis_port}/0")
        # Schema, assets and users in one Django start-up (each start costs seconds here).
        done = nodes.manage(
            "shell", "-c", SETUP_SCRIPT.format(names=[f"quiet{i}" for i in range(4)], staff="operator"), env=env
        )
        assert done.returncode == 0, done.stderr
        made = json.loads(done.stdout.strip().splitlines()[-1])
        app_env = {
            **env,
            "DATABASE_REPLICA_URLS": replica.url("portfolio"),
            # Long enough that a replica whose replay the tests pause stays in use.
            "REPLICA_MAX_LAG_SECONDS": "600",
            "REPLICA_CHECK_SECONDS": "0.2",
        }
        ports = []
        instances = (("app-a", 2, {}), ("app-b", 2, {}), ("app-strict", 1, {"REPLICA_MAX_LAG_SECONDS": "1"}))
        for name, workers, settings in instances:
            process, port = nodes.gunicorn(base, name, {**app_env, **settings}, workers=workers, wait=False)
            cluster.adopt(process)
            ports.append(port)
        for port in ports:
            nodes.wait_http(port)
        apps = [f"http://127.0.0.1:{port}" for port in ports]
        handle = ReplicaCluster(
            base, primary, replica, env, apps[:2], apps[2], redis_process, made["users"], made["staff_session"]
        )
        handle.caught_up()
        yield handle
    finally:
        cluster.close()
