"""The authentication backend of every password login (AUTHENTICATION_BACKENDS): Django's
``ModelBackend`` with one difference. When a login's password check upgrades the stored hash
(Django raises PBKDF2's iterations in each release; PASSWORD_HASHERS may change), Django
saves the new hash, which is a new password as far as the bindings of accounts/tokens.py can
tell, and every API key of the user would end although the password did not change. Here the
upgrade re-binds the keys in the same transaction (``accounts.services.rehash_password``).
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend

from accounts.services import password_is_correct


class PasswordBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        # ModelBackend.authenticate (Django 5.2), with password_is_correct for user.check_password.
        user_model = get_user_model()
        if username is None:
            username = kwargs.get(user_model.USERNAME_FIELD)
        if username is None or password is None:
            return None
        try:
            user = user_model._default_manager.get_by_natural_key(username)
        except user_model.DoesNotExist:
            # Run the default password hasher once to reduce the timing difference between an
            # existing and a nonexistent user (Django #20760).
            user_model().set_password(password)
            return None
        if password_is_correct(user=user, raw_password=password) and self.user_can_authenticate(user):
            return user
        return None

    async def aauthenticate(self, request, **kwargs):
        # ModelBackend's own async twin checks the password itself; this one takes the path above.
        return await sync_to_async(self.authenticate)(request, **kwargs)
