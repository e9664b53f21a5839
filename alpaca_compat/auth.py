"""Authentication with Alpaca's headers, ``APCA-API-KEY-ID`` and ``APCA-API-SECRET-KEY``:
the API keys of accounts/, the same ones /api/v1 takes."""

from __future__ import annotations

from dataclasses import dataclass

from accounts.models import ApiKey
from accounts.selectors import get_api_key_for_credentials, get_token_with_user
from accounts.services import create_api_key
from accounts.tokens import token_matches_password
from alpaca_compat.authentication import ApiKeyAuthentication

__all__ = ["ApiKeyAuthentication", "StreamIdentity", "api_key_of", "key_pair_for", "stream_identity"]


def api_key_of(request) -> ApiKey | None:
    """The key that authenticated the request (recorded on the orders it places)."""
    return request.auth if isinstance(request.auth, ApiKey) else None


def key_pair_for(user, *, name: str = "alpaca", reuse: tuple[str, str] | None = None) -> tuple[str, str]:
    """A key id and secret ``user`` gives alpaca-py: ``reuse`` when it is still a valid key
    of this user, else a new key (the demo command and the bench use it)."""
    if reuse is not None:
        key = get_api_key_for_credentials(key_id=reuse[0], secret=reuse[1])
        if key is not None and key.user_id == user.pk:
            return reuse
    new = create_api_key(user=user, name=name)
    return new.api_key.key_id, new.secret_key


@dataclass(frozen=True)
class StreamIdentity:
    user_id: int
    credential: str  # what a stream's connection limit counts: the key, or the user's token


def stream_identity(*, key_id=None, secret=None, oauth_token=None) -> StreamIdentity | None:
    """Who a stream's authentication message names: an active API key with its secret, as
    alpaca-py sends them, or the account's API token (``oauth_token``, as Alpaca's OAuth
    clients send theirs); None for anything else, a malformed value included. One query."""
    if any(isinstance(value, str) and "\x00" in value for value in (key_id, secret, oauth_token)):
        return None  # PostgreSQL's text cannot hold NUL: no such credential exists
    if isinstance(oauth_token, str) and oauth_token and key_id is None and secret is None:
        token = get_token_with_user(key=oauth_token[:64])
        if token is None or not token.user.is_active or not token_matches_password(token.key, token.user):
            return None
        return StreamIdentity(user_id=token.user_id, credential=f"token:{token.user_id}")
    if not (isinstance(key_id, str) and isinstance(secret, str) and key_id and secret) or oauth_token is not None:
        return None
    api_key = get_api_key_for_credentials(key_id=key_id, secret=secret[:256])
    if api_key is None or not api_key.user.is_active:
        return None
    return StreamIdentity(user_id=api_key.user_id, credential=f"key:{api_key.key_id}")
