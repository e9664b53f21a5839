"""Who may read whose data through the API: a user their own, back-office staff another
user's by ``?username=`` (docs/DESIGN.md, "Permissions"). Another user's data is 404, never 403."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework import exceptions as drf_exceptions

# The back office's groups (balances.0002_staff_groups). The admin lets a staff user see
# users' data through these groups' view permissions, or as a superuser.
BACK_OFFICE_GROUPS = ("Support", "Operations")


def may_read_other_users(user) -> bool:
    """The admin's rule for reading other users' data, applied to the API: active staff in the
    Support or Operations group, or a superuser. ``is_staff`` alone only lets a user log in to
    the admin, where such a user sees nothing."""
    if not (user.is_active and user.is_staff):
        return False
    return user.is_superuser or user.groups.filter(name__in=BACK_OFFICE_GROUPS).exists()


class OwnerScopedMixin:
    """Views whose data belongs to one user: the requester, or for back-office staff the user
    named by ``?username=``. Anyone else's data is 404, never 403."""

    def target_user(self, permission: str | None = None):
        """The user whose data the request reads, or acts on: for another user's, staff need
        ``permission`` too when given (the admin's permission for that action)."""
        request = self.request
        username = request.query_params.get("username")
        if not username or username == request.user.get_username():
            return request.user
        if not may_read_other_users(request.user) or (permission and not request.user.has_perm(permission)):
            raise drf_exceptions.NotFound("No such user.")
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise drf_exceptions.NotFound("No such user.")
        return user
