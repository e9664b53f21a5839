"""Reads for authentication: a user's API keys, and the key a request presents."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.utils.crypto import constant_time_compare

from accounts.models import ApiKey
from accounts.services import hash_secret


def get_api_keys(*, user: AbstractBaseUser) -> QuerySet[ApiKey]:
    """The user's active keys, newest first."""
    return ApiKey.objects.filter(user=user, revoked_at__isnull=True).order_by("-created_at", "key_id")


def get_api_key_for_credentials(*, key_id: str, secret: str) -> ApiKey | None:
    """The active key with this id and secret, its user loaded (one query), or None. The
    secret's hash is compared in constant time; an unknown id costs the same hash."""
    api_key = (
        ApiKey.objects.select_related("user").filter(key_id=key_id, revoked_at__isnull=True).first()
        if len(key_id) <= 20
        else None
    )
    presented = hash_secret(secret)
    if api_key is None or not constant_time_compare(presented, api_key.secret_hash):
        return None
    return api_key
