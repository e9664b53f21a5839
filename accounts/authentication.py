"""DRF authentication by password-bound token (REST_FRAMEWORK's default). API keys arrive in
Alpaca's headers, which only alpaca_compat names (alpaca_compat/authentication.py).

This module imports no DRF view: DRF resolves DEFAULT_AUTHENTICATION_CLASSES while
``rest_framework.views`` itself is being imported (tests/test_settings_import_order.py).
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions

from accounts.selectors import get_token_with_user
from accounts.tokens import token_matches_password
from core.api.authentication import TokenAuthentication


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
