"""The HTML login forms (the admin's and the browsable API's), throttled like ``auth/token/``.

Both are Django's ``LoginView`` with an authentication form; the throttle goes in the form's
``clean()``, before the password is checked, through the same ``check_login_attempt`` as the
API's token view, so the three paths share one allowance per address and per username. A
refused attempt shows the form again with the reason, answered 429 with ``Retry-After``.
"""

from __future__ import annotations

import functools
import math

from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from core.api.throttles import check_login_attempt


class ThrottledLoginMixin:
    throttle_wait: float | None = None

    def clean(self):
        username = self.cleaned_data.get("username")
        if username is not None and self.cleaned_data.get("password") is not None:
            self.throttle_wait = check_login_attempt(self.request, username)
            if self.throttle_wait is not None:
                raise ValidationError(
                    "Too many login attempts. Try again in %(seconds)d seconds.",
                    code="throttled",
                    params={"seconds": math.ceil(self.throttle_wait)},
                )
        return super().clean()


class ThrottledAuthenticationForm(ThrottledLoginMixin, AuthenticationForm):
    """The browsable API's session login."""


class ThrottledAdminAuthenticationForm(ThrottledLoginMixin, AdminAuthenticationForm):
    """The admin's login (``admin.site.login_form``)."""


def answer_throttled_login_with_429(view):
    """Wrap a login view: when its form refused the attempt for the throttle, the page it
    shows again is a 429 with ``Retry-After``, so scripts see what browsers read."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        form = (getattr(response, "context_data", None) or {}).get("form")
        wait = getattr(form, "throttle_wait", None)
        if wait is not None:
            response.status_code = 429
            response["Retry-After"] = str(math.ceil(wait))
        return response

    return wrapper
