"""Token authentication that says what is wrong with an Authorization header.

DRF's TokenAuthentication takes only ``Token <key>`` and ignores anything else, so a bare
key or ``Bearer <key>`` (what Swagger UI's bearer scheme and most HTTP clients send) was
answered "Authentication credentials were not provided.", as if nothing had been sent.
Here ``Bearer`` is the same as ``Token``, and any other header is a 401 naming its fault.

This module imports no DRF view: DRF resolves DEFAULT_AUTHENTICATION_CLASSES while
``rest_framework.views`` itself is being imported.
"""

from __future__ import annotations

from rest_framework import authentication, exceptions

SCHEMES = (b"token", b"bearer")
HOW = "Send 'Authorization: Token <key>' (or 'Bearer <key>'), with the key from auth/token/."


class TokenAuthentication(authentication.TokenAuthentication):
    def authenticate(self, request):
        header = authentication.get_authorization_header(request)
        if not header:
            return None
        parts = header.split()
        if not parts:
            raise exceptions.AuthenticationFailed(f"The Authorization header is empty. {HOW}")
        if parts[0].lower() not in SCHEMES:
            if len(parts) == 1:
                raise exceptions.AuthenticationFailed(f"The Authorization header has no scheme before the key. {HOW}")
            scheme = parts[0].decode("latin-1")[:20]
            raise exceptions.AuthenticationFailed(f"The Authorization scheme {scheme!r} is not accepted. {HOW}")
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(f"The Authorization header must be the scheme and one key. {HOW}")
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(f"The key is not ASCII. {HOW}") from None
        return self.authenticate_credentials(key)
