"""DRF authentication classes (REST_FRAMEWORK's defaults): password-bound tokens and API keys.

This module imports no DRF view: DRF resolves DEFAULT_AUTHENTICATION_CLASSES while
``rest_framework.views`` itself is being imported (tests/test_settings_import_order.py).
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from accounts.selectors import find_api_key, get_token_with_user
from accounts.tokens import key_matches_password, token_matches_password
from core.api.authentication import TokenAuthentication

KEY_ID_HEADER = "HTTP_APCA_API_KEY_ID"
SECRET_HEADER = "HTTP_APCA_API_SECRET_KEY"


class PasswordBoundTokenAuthentication(TokenAuthentication):
    """``Authorization: Token <key>`` (or ``Bearer``, core/api/authentication.py), refused once
    the password changed (accounts/tokens.py)."""

    def authenticate_credentials(self, key):
        # DRF's checks, in DRF's words, with the lookup of accounts.selectors.
        token = get_token_with_user(key=key)
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user = token.user
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        if not token_matches_password(token.key, user):
            raise exceptions.AuthenticationFailed(
                "This token ended when the password was changed; get a new one from auth/token/."
            )
        return user, token


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
