"""Reads for authentication: a user's API keys, and the key a request presents."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.utils.crypto import constant_time_compare

from accounts.models import ApiKey
from accounts.services import hash_secret

KEY_ID_MAX_LENGTH = ApiKey._meta.get_field("key_id").max_length


def get_api_keys(*, user: AbstractBaseUser) -> QuerySet[ApiKey]:
    """The user's active keys, newest first."""
    return ApiKey.objects.filter(user=user, revoked_at__isnull=True).order_by("-created_at", "key_id")


def get_api_key_for_credentials(*, key_id: str, secret: str) -> ApiKey | None:
    """The active key with this id and secret, its user loaded (one query), or None. The
    secret's hash is compared in constant time; an unknown id costs the same hash."""
    presented = hash_secret(secret)
    if len(key_id) > KEY_ID_MAX_LENGTH:
        return None
    try:
        # get(), not first(): first() would add the model's ORDER BY to a primary-key lookup.
        api_key = ApiKey.objects.select_related("user").get(key_id=key_id, revoked_at__isnull=True)
    except ApiKey.DoesNotExist:
        return None
    return api_key if constant_time_compare(presented, api_key.secret_hash) else None
