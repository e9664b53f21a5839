"""Writes for how clients authenticate: API tokens (issued, revoked), API keys (created,
revoked) and passwords (changed, keeping the API keys or not). Each owns its transaction."""

from __future__ import annotations

import hashlib
import secrets
import string
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from accounts.models import ApiKey
from accounts.tokens import (
    key_matches_password,
    new_token_key,
    password_fingerprint,
    password_fingerprints,
    token_matches_password,
)
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
    ``MAX_ACTIVE_KEYS`` together, and so that the key is bound to the password stored now
    (``change_password`` takes the same lock). Keys ended by a password change do not count.
    Raises Conflict at the cap.
    """
    secret = "".join(secrets.choice(SECRET_ALPHABET) for _ in range(SECRET_LENGTH))
    # 36**18 ids: a collision is not expected in the life of the service, and would be a
    # 500 of one request, not a wrong key.
    key_id = KEY_ID_PREFIX + "".join(secrets.choice(KEY_ID_ALPHABET) for _ in range(18))
    with transaction.atomic(durable=True):
        locked = get_user_model().objects.select_for_update().get(pk=user.pk)
        not_revoked = ApiKey.objects.filter(user=user, revoked_at__isnull=True).values_list("password_fingerprint")
        if sum(key_matches_password(fingerprint, locked) for (fingerprint,) in not_revoked) >= MAX_ACTIVE_KEYS:
            raise Conflict(
                f"You have {MAX_ACTIVE_KEYS} active API keys, the most allowed; revoke one first.",
                details={"max_active_keys": MAX_ACTIVE_KEYS},
            )
        api_key = ApiKey.objects.create(
            key_id=key_id,
            user=user,
            name=name,
            secret_hash=hash_secret(secret),
            password_fingerprint=password_fingerprint(user_id=locked.pk, password_hash=locked.password),
        )
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


# --- Passwords ----------------------------------------------------------------------------


def change_password(*, user: AbstractBaseUser, raw_password: str | None, keep_api_keys: bool) -> int:
    """Set the user's password (None: an unusable one, password logins disabled). Every token
    and session ends with the old hash (accounts/tokens.py); so do the API keys, unless
    ``keep_api_keys``: then the keys bound to the old password are bound to the new one in the
    same transaction (keys already ended by an earlier change stay ended). The caller has
    checked the old password or the staff member's permission, and validated the new one.

    Locks the user's ``auth_user`` row (as ``create_api_key`` does, so no key is made under
    the old password once the new one is stored). Returns how many keys were kept."""
    with transaction.atomic(durable=True):
        locked = get_user_model().objects.select_for_update().get(pk=user.pk)
        old_hash = locked.password
        if raw_password is None:
            user.set_unusable_password()
        else:
            user.set_password(raw_password)
        user.save(update_fields=["password"])
        if not keep_api_keys:
            return 0
        return _rebind_api_keys_locked(user=user, old_hash=old_hash)


def rehash_password(*, user: AbstractBaseUser, raw_password: str) -> None:
    """Store the password again under the preferred hasher (Django's upgrade on a login, when
    PASSWORD_HASHERS or the hasher's iterations changed): the password is the same, so the
    keys stay bound to it. Tokens, whose key carries the binding, end as with any new hash.
    Takes the user's lock, as ``change_password``."""
    with transaction.atomic():
        locked = get_user_model().objects.select_for_update().get(pk=user.pk)
        user.set_password(raw_password)
        user.save(update_fields=["password"])
        _rebind_api_keys_locked(user=user, old_hash=locked.password)


def _rebind_api_keys_locked(*, user: AbstractBaseUser, old_hash: str) -> int:
    """Bind the user's unrevoked keys that were bound to ``old_hash`` to the user's current
    password. The caller holds the user's lock."""
    old = list(password_fingerprints(user_id=user.pk, password_hash=old_hash))
    new = password_fingerprint(user_id=user.pk, password_hash=user.password)
    bound = ApiKey.objects.filter(user=user, revoked_at__isnull=True, password_fingerprint__in=old)
    return bound.update(password_fingerprint=new)


def password_is_correct(*, user: AbstractBaseUser, raw_password: str) -> bool:
    """``user.check_password``, except that when Django upgrades the stored hash on the way
    (a new hasher or more iterations) the API keys stay bound (``rehash_password``)."""
    return check_password(raw_password, user.password, setter=lambda raw: rehash_password(user=user, raw_password=raw))
