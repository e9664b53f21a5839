"""API tokens and API keys bound to the user's password, the way Django binds sessions to it.

Why not a signal that deletes tokens when the password changes: passwords change through code
we do not own (the admin's password form, ``manage.py changepassword``, ``set_password()`` +
``save()`` in a shell, even a raw ``UPDATE`` of the column), and a receiver sees only the paths
that go through ``save()`` with ``set_password`` just called. Django's own answer for sessions
is ``get_session_auth_hash()``: an HMAC of the password hash, checked on each request, so any
change of the hash ends every session. Tokens do the same here, without a new column or
model: a token key is 20 hex characters of randomness and 20 of
HMAC(SECRET_KEY, user id + randomness + password hash). Authentication already loads the user
with the token (one query), so the check is one HMAC, about 2 microseconds.

A token made any other way (``Token.objects.create``, DRF's token admin) does not verify:
issue them with ``accounts.services.issue_token``.

API keys are bound the same way, but their secret is random and shown once, so the binding
cannot be in it: each key stores a fingerprint, HMAC(SECRET_KEY, user id + password hash),
stamped when the key is made, and authentication compares it with the user's hash it has
already loaded (one HMAC, no query). A user who changes the password and asks to keep the
keys has them re-stamped in the same transaction (``accounts.services.change_password``);
every other change of the hash, whatever made it, ends them.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.utils.crypto import constant_time_compare, salted_hmac

SALT = "accounts.tokens.password-bound-token"
NONCE_HEX = 20  # 80 random bits; the MAC adds 80 more that only the server can compute
KEY_LENGTH = 40  # DRF's Token.key column


def _mac(nonce: str, user: AbstractBaseUser, secret: str | None = None) -> str:
    value = f"{user.pk}:{nonce}:{user.password}"
    return salted_hmac(SALT, value, secret=secret, algorithm="sha256").hexdigest()[: KEY_LENGTH - NONCE_HEX]


def new_token_key(user: AbstractBaseUser) -> str:
    nonce = secrets.token_hex(NONCE_HEX // 2)
    return nonce + _mac(nonce, user)


def token_matches_password(key: str, user: AbstractBaseUser) -> bool:
    """True while the user's password is the one the token was issued under. Keys made under
    a previous SECRET_KEY (listed in SECRET_KEY_FALLBACKS) still verify, as sessions do."""
    if len(key) != KEY_LENGTH:
        return False
    nonce, mac = key[:NONCE_HEX], key[NONCE_HEX:]
    if constant_time_compare(mac, _mac(nonce, user)):
        return True
    return any(constant_time_compare(mac, _mac(nonce, user, fallback)) for fallback in settings.SECRET_KEY_FALLBACKS)


KEY_SALT = "accounts.tokens.password-bound-api-key"


def password_fingerprint(*, user_id: int, password_hash: str, secret: str | None = None) -> str:
    """What an API key stores of the password it was made under: 64 hex characters."""
    value = f"{user_id}:{password_hash}"
    return salted_hmac(KEY_SALT, value, secret=secret, algorithm="sha256").hexdigest()


def password_fingerprints(*, user_id: int, password_hash: str) -> Iterator[str]:
    """The fingerprint under SECRET_KEY, then under each of SECRET_KEY_FALLBACKS (a key stamped
    before SECRET_KEY was rotated carries one of those), each computed when asked for."""
    for secret in (None, *settings.SECRET_KEY_FALLBACKS):
        yield password_fingerprint(user_id=user_id, password_hash=password_hash, secret=secret)


def key_matches_password(fingerprint: str, user: AbstractBaseUser) -> bool:
    """True while the user's password is the one the key was made (or kept) under."""
    candidates = password_fingerprints(user_id=user.pk, password_hash=user.password)
    return any(constant_time_compare(fingerprint, candidate) for candidate in candidates)
