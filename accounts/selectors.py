"""Reads for authentication: a user's API keys, and the token or key a request presents."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.utils.crypto import constant_time_compare
from rest_framework.authtoken.models import Token

from accounts.models import ApiKey
from accounts.services import hash_secret
from accounts.tokens import key_matches_password
from core.sql import RowWithRelated

KEY_ID_MAX_LENGTH = ApiKey._meta.get_field("key_id").max_length

# Read on every authenticated request, always from the primary: a revoked key or a token
# whose password changed must stop working at once, not after a replica's lag.
_TOKEN_WITH_USER = RowWithRelated(Token, "user", "m.key = %s")
_ACTIVE_KEY_WITH_USER = RowWithRelated(ApiKey, "user", "m.key_id = %s AND m.revoked_at IS NULL")


def username_taken(*, username: str, excluding: AbstractBaseUser | None = None) -> bool:
    """Whether another user has this name in any case: usernames are unique in any case (the
    index of accounts/migrations/0003 decides races; this answers a form before it gets there)."""
    users = get_user_model().objects.filter(username__iexact=username)
    if excluding is not None:
        users = users.exclude(pk=excluding.pk)
    return users.exists()


def get_token_with_user(*, key: str) -> Token | None:
    """The API token with this key, its user loaded (one query), or None."""
    return _TOKEN_WITH_USER.get(key)


def get_api_keys(*, user: AbstractBaseUser) -> list[ApiKey]:
    """The user's active keys, newest first: not revoked, and bound to the current password
    (a key ended by a password change is not listed). One query; at most MAX_ACTIVE_KEYS
    fingerprints checked, one HMAC each."""
    not_revoked = ApiKey.objects.filter(user=user, revoked_at__isnull=True).order_by("-created_at", "key_id")
    return [key for key in not_revoked if key_matches_password(key.password_fingerprint, user)]


def find_api_key(*, key_id: str, secret: str) -> ApiKey | None:
    """The unrevoked key with this id and secret, its user loaded (one query), or None,
    whether or not it is still bound to the password (authentication says which it is).
    The secret's hash is compared in constant time; an unknown id costs the same hash."""
    presented = hash_secret(secret)
    if len(key_id) > KEY_ID_MAX_LENGTH:
        return None
    api_key = _ACTIVE_KEY_WITH_USER.get(key_id)
    if api_key is None:
        return None
    return api_key if constant_time_compare(presented, api_key.secret_hash) else None


def get_api_key_for_credentials(*, key_id: str, secret: str) -> ApiKey | None:
    """The active key with this id and secret (not revoked, its password unchanged), its user
    loaded (one query), or None."""
    api_key = find_api_key(key_id=key_id, secret=secret)
    if api_key is None or not key_matches_password(api_key.password_fingerprint, api_key.user):
        return None
    return api_key
