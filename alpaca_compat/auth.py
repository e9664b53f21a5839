"""Authentication with Alpaca's headers, ``APCA-API-KEY-ID`` and ``APCA-API-SECRET-KEY``.

The view asks one function, ``find_key``, who a key id and secret belong to. Until the API
keys of SPEC 11 exist it reads the pair as (username, the user's API token), the credentials
a user already has; ``find_key`` is the one place that changes when keys arrive.
"""

from __future__ import annotations

import hmac

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.authtoken.models import Token

KEY_ID_HEADER = "HTTP_APCA_API_KEY_ID"
SECRET_HEADER = "HTTP_APCA_API_SECRET_KEY"


def find_key(key_id: str, secret: str):
    """(user, key) for a valid pair, else None. One query."""
    token = Token.objects.select_related("user").filter(key=secret[:40]).first()
    if token is None or not hmac.compare_digest(token.user.get_username(), key_id):
        return None
    if not token.user.is_active:
        return None
    return token.user, None


class AlpacaKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        key_id = request.META.get(KEY_ID_HEADER)
        secret = request.META.get(SECRET_HEADER)
        if key_id is None and secret is None:
            return None
        if not key_id or not secret:
            raise exceptions.AuthenticationFailed()
        found = find_key(key_id, secret)
        if found is None:
            raise exceptions.AuthenticationFailed()
        return found

    def authenticate_header(self, request) -> str:
        # Any value makes DRF answer 401 (not 403) to a request without credentials.
        return "APCA-API-KEY-ID"


def key_pair_for(user) -> tuple[str, str]:
    """A key id and secret ``user`` gives alpaca-py (the demo command and the bench use it)."""
    token, _ = Token.objects.get_or_create(user=user)
    return user.get_username(), token.key
