"""Authentication with Alpaca's headers, ``APCA-API-KEY-ID`` and ``APCA-API-SECRET-KEY``:
the API keys of SPEC 11 (accounts/), the same ones /api/v1 takes."""

from __future__ import annotations

from accounts.authentication import ApiKeyAuthentication
from accounts.models import ApiKey
from accounts.selectors import get_api_key_for_credentials
from accounts.services import create_api_key

__all__ = ["ApiKeyAuthentication", "api_key_of", "key_pair_for"]


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
