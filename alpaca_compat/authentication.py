"""API keys in Alpaca's headers, ``APCA-API-KEY-ID`` and ``APCA-API-SECRET-KEY``: how programs
authenticate on both APIs (REST_FRAMEWORK's default, beside the token). The headers are
Alpaca's wire, so they are named here; the key, its lookup and what binds it to the password
are accounts'.

This module imports no DRF view: DRF resolves DEFAULT_AUTHENTICATION_CLASSES while
``rest_framework.views`` itself is being imported (tests/test_settings_import_order.py).
"""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from accounts.selectors import find_api_key
from accounts.tokens import key_matches_password

KEY_ID_HEADER = "HTTP_APCA_API_KEY_ID"
SECRET_HEADER = "HTTP_APCA_API_SECRET_KEY"


class ApiKeyAuthentication(BaseAuthentication):
    """The ``APCA-API-KEY-ID`` and ``APCA-API-SECRET-KEY`` headers, as Alpaca's clients send
    them. A request without the key id header is left to the other classes; one with a bad,
    revoked or half-given key, or one ended by a password change, is a 401."""

    def authenticate(self, request):
        key_id = request.META.get(KEY_ID_HEADER)
        if key_id is None:
            return None
        secret = request.META.get(SECRET_HEADER)
        if not key_id or not secret:
            raise exceptions.AuthenticationFailed("Send both APCA-API-KEY-ID and APCA-API-SECRET-KEY.")
        api_key = find_api_key(key_id=key_id, secret=secret)
        if api_key is None or not api_key.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        if not key_matches_password(api_key.password_fingerprint, api_key.user):
            raise exceptions.AuthenticationFailed(
                "This API key ended when the password was changed; create a new one at api-keys/ with your token."
            )
        return api_key.user, api_key

    def authenticate_header(self, request):
        return "APCA-API-KEY-ID"
