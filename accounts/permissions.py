"""What an API key may do (docs/DESIGN.md, "Permissions").

A key is what a program holds, often on a server the user does not watch: it trades and reads
(orders placed, replaced, cancelled, positions closed; every GET), and nothing more. Minting
or revoking keys, ending tokens or sessions (logout), changing the password and moving cash in
or out need the user's token or a session. A key that leaked then cannot make itself a
successor that outlives its revocation, lock its owner out, or take the money.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, IsAuthenticated

from accounts.models import ApiKey


class ReadOnlyForApiKeys(IsAuthenticated):
    """A logged-in user; with an API key, reads only. Views declare it with what a key may not
    do there, for the refusal's message (403 ``permission_denied``)::

        permission_classes = [ReadOnlyForApiKeys]
        refused_to_api_keys = "create or revoke API keys"
    """

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        if request.method in SAFE_METHODS or not isinstance(request.auth, ApiKey):
            return True
        # DRF makes the permission objects for each request, so the message is this request's.
        self.message = f"API keys cannot {view.refused_to_api_keys}; use your token (auth/token/) or a session."
        return False
