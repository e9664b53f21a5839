"""What authenticating a request costs: DRF's plain token, the password-bound token, an API key.

    DATABASE_URL=... .venv/bin/python scripts/bench/auth_cost.py [N]

Runs each authentication class N times (default 5000) on one user against the configured
PostgreSQL and prints the median and mean microseconds per call, then the CPU-only part of each
check (the HMAC of a bound token, the SHA-256 of a key's secret, the HMAC binding a key to the
password). Its user, ``auth-cost-bench``,
stays in the database for the next run (a user's ledger rows cannot be deleted).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portfolio_project.settings")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.test import RequestFactory  # noqa: E402
from rest_framework.authentication import TokenAuthentication  # noqa: E402
from rest_framework.request import Request  # noqa: E402

from accounts.authentication import PasswordBoundTokenAuthentication  # noqa: E402
from accounts.services import create_api_key, hash_secret, issue_token, revoke_api_keys  # noqa: E402
from accounts.tokens import key_matches_password, token_matches_password  # noqa: E402
from alpaca_compat.authentication import ApiKeyAuthentication  # noqa: E402

BENCH_USER = "auth-cost-bench"


def timed(call, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


def main(n: int) -> None:
    User = get_user_model()
    user = User.objects.filter(username=BENCH_USER).first() or User.objects.create_user(BENCH_USER, password=None)
    revoke_api_keys(key_ids=list(user.api_keys.values_list("key_id", flat=True)), actor=user)  # earlier runs'
    token = issue_token(user=user).key
    key = create_api_key(user=user, name="bench")
    factory = RequestFactory()
    token_request = Request(factory.get("/", HTTP_AUTHORIZATION=f"Token {token}"))
    key_request = Request(
        factory.get("/", HTTP_APCA_API_KEY_ID=key.api_key.key_id, HTTP_APCA_API_SECRET_KEY=key.secret_key)
    )
    rows = [
        ("DRF TokenAuthentication (before)", lambda: TokenAuthentication().authenticate(token_request)),
        ("PasswordBoundTokenAuthentication", lambda: PasswordBoundTokenAuthentication().authenticate(token_request)),
        ("ApiKeyAuthentication", lambda: ApiKeyAuthentication().authenticate(key_request)),
        ("  CPU only: token HMAC check", lambda: token_matches_password(token, user)),
        ("  CPU only: key SHA-256", lambda: hash_secret(key.secret_key)),
        ("  CPU only: key password HMAC", lambda: key_matches_password(key.api_key.password_fingerprint, user)),
    ]
    for _name, call in rows:  # warm the connection and the code paths
        timed(call, 200)
    # Interleaved in rounds of 100, so that a busy machine's drift falls on every row alike.
    samples: dict[str, list[float]] = {name: [] for name, _ in rows}
    for _round in range(max(1, n // 100)):
        for name, call in rows:
            samples[name].extend(timed(call, 100))
    print(f"{'authentication':<36} {'median us':>10} {'mean us':>10}   (n={n})")
    for name, _call in rows:
        print(f"{name:<36} {statistics.median(samples[name]):>10.1f} {statistics.fmean(samples[name]):>10.1f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
