"""The demo key the example bot uses out of the box (the bot itself runs against a server with
the streams: tests/alpaca_compat/streams/test_example_bot.py)."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

from django.core.management import call_command
from rest_framework.test import APIClient

from alpaca_compat.management.commands import alpaca_demo_key


def _env_file_values(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def test_the_demo_key_command_writes_a_key_pair_that_authenticates(db, tmp_path, monkeypatch):
    # given
    env_file = tmp_path / "alpaca-demo.env"
    monkeypatch.setattr(alpaca_demo_key, "ENV_FILE", env_file)

    # when: twice, as every `make run` does
    call_command("alpaca_demo_key", stdout=StringIO())
    first = env_file.read_text()
    call_command("alpaca_demo_key", stdout=StringIO())

    # then
    assert env_file.read_text() == first
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    values = _env_file_values(env_file)
    client = APIClient(
        HTTP_APCA_API_KEY_ID=values["APCA_API_KEY_ID"], HTTP_APCA_API_SECRET_KEY=values["APCA_API_SECRET_KEY"]
    )
    account = client.get("/v2/account").json()
    assert (account["status"], account["cash"]) == ("ACTIVE", "10000.00")


def test_the_demo_key_file_names_the_server_make_run_serves_on(db, tmp_path, monkeypatch):
    # given
    env_file = tmp_path / "alpaca-demo.env"
    monkeypatch.setattr(alpaca_demo_key, "ENV_FILE", env_file)

    # when: make run on port 8765 writes it, then the command is run by hand without a URL
    call_command("alpaca_demo_key", base_url="http://127.0.0.1:8765", stdout=StringIO())
    first = _env_file_values(env_file)
    call_command("alpaca_demo_key", stdout=StringIO())

    # then: the URL the example bot reads is make run's, and stays so
    assert first["APCA_API_BASE_URL"] == "http://127.0.0.1:8765"
    assert _env_file_values(env_file) == first
