"""Writes for how clients authenticate: API tokens (issued, revoked) and API keys (created,
revoked). Each owns its transaction."""

from __future__ import annotations

import hashlib
import secrets
import string
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from accounts.models import ApiKey
from accounts.tokens import new_token_key, token_matches_password
from core.exceptions import Conflict

KEY_ID_PREFIX = "PK"  # as Alpaca's paper-trading key ids
KEY_ID_ALPHABET = string.ascii_uppercase + string.digits
SECRET_ALPHABET = string.ascii_letters + string.digits
SECRET_LENGTH = 40
MAX_ACTIVE_KEYS = 25  # per user: keeps api-keys/ a short unpaginated list


# --- Tokens ---------------------------------------------------------------------------


def issue_token(*, user: AbstractBaseUser) -> Token:
    """The user's API token (one per user, DRF's model): the current one while it is bound to
    the password, else a new one in its place."""
    token = Token.objects.filter(user=user).first()
    if token is not None and token_matches_password(token.key, user):
        return token
    try:
        with transaction.atomic():
            Token.objects.filter(user=user).delete()  # ended by a password change
            return Token.objects.create(user=user, key=new_token_key(user))
    except IntegrityError:
        # Two logins replaced the token at once; the other's is bound to the same password.
        return Token.objects.get(user=user)


def revoke_token(*, user: AbstractBaseUser) -> bool:
    """End the user's API token (``auth/logout/``). False when there was none."""
    deleted, _ = Token.objects.filter(user=user).delete()
    return deleted > 0


# --- API keys ---------------------------------------------------------------------------


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class NewApiKey:
    api_key: ApiKey
    secret_key: str  # shown once, never stored


def create_api_key(*, user: AbstractBaseUser, name: str) -> NewApiKey:
    """A new key for the user's programs; the secret is in the answer and nowhere else.

    Locks the user's ``auth_user`` row so that racing requests cannot pass the cap of
    ``MAX_ACTIVE_KEYS`` together. Raises Conflict at the cap.
    """
    secret = "".join(secrets.choice(SECRET_ALPHABET) for _ in range(SECRET_LENGTH))
    # 36**18 ids: a collision is not expected in the life of the service, and would be a
    # 500 of one request, not a wrong key.
    key_id = KEY_ID_PREFIX + "".join(secrets.choice(KEY_ID_ALPHABET) for _ in range(18))
    with transaction.atomic(durable=True):
        type(user).objects.select_for_update().filter(pk=user.pk).first()
        if ApiKey.objects.filter(user=user, revoked_at__isnull=True).count() >= MAX_ACTIVE_KEYS:
            raise Conflict(
                f"You have {MAX_ACTIVE_KEYS} active API keys, the most allowed; revoke one first.",
                details={"max_active_keys": MAX_ACTIVE_KEYS},
            )
        api_key = ApiKey.objects.create(key_id=key_id, user=user, name=name, secret_hash=hash_secret(secret))
    return NewApiKey(api_key=api_key, secret_key=secret)


def revoke_api_key(*, user: AbstractBaseUser, key_id: str) -> bool:
    """The user revokes one of their own active keys. False (nothing changed) for anyone
    else's key, an unknown one, or one already revoked: the caller answers 404 alike."""
    active = ApiKey.objects.filter(key_id=key_id, user=user, revoked_at__isnull=True)
    return active.update(revoked_at=timezone.now()) > 0


def revoke_api_keys(*, key_ids: list[str], actor: AbstractBaseUser) -> int:
    """Staff revoke keys (the admin's action). Keys already revoked keep their first
    revocation; returns how many were active."""
    return ApiKey.objects.filter(key_id__in=key_ids, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_by=actor
    )
