"""``python manage.py alpaca_demo_key``: a paper-trading user and the key pair a program gives
alpaca-py, so ``examples/alpaca_bot.py`` runs against ``make run`` with nothing to set up.

The user (``alpaca_demo`` by default) is created once, funded like every new user; an API key
of it is written to ``.data/alpaca-demo.env`` (owner-only) in the environment variables the
example reads, with the URL of the server (``--base-url``: ``make run`` passes its own, so the
example finds a server on any port). Later runs reuse both while the key is valid (its secret
is stored nowhere else: the database keeps only its hash).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from alpaca_compat.auth import key_pair_for
from balances.services import register_user

ENV_FILE = Path(settings.BASE_DIR) / ".data" / "alpaca-demo.env"
DEFAULT_BASE_URL = "http://127.0.0.1:8000"


class Command(BaseCommand):
    help = "Create a demo user and its Alpaca key pair (once) and write them to .data/alpaca-demo.env."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="alpaca_demo")
        parser.add_argument(
            "--base-url", help=f"the server's URL for the example (default: the file's, or {DEFAULT_BASE_URL})"
        )

    def handle(self, *args, username: str, base_url: str | None, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            user, _ = register_user(username=username, password=secrets.token_urlsafe(16))
        written, values = None, {}
        if ENV_FILE.exists():
            values = dict(line.split("=", 1) for line in ENV_FILE.read_text().splitlines() if "=" in line)
            written = (values.get("APCA_API_KEY_ID", ""), values.get("APCA_API_SECRET_KEY", ""))
        key_id, secret = key_pair_for(user, name="alpaca_demo", reuse=written)
        base_url = base_url or values.get("APCA_API_BASE_URL") or DEFAULT_BASE_URL
        ENV_FILE.parent.mkdir(parents=True, exist_ok=True)
        ENV_FILE.write_text(f"APCA_API_BASE_URL={base_url}\nAPCA_API_KEY_ID={key_id}\nAPCA_API_SECRET_KEY={secret}\n")
        ENV_FILE.chmod(0o600)
        self.stdout.write(f"Alpaca:   key {key_id} (secret in {ENV_FILE})")
