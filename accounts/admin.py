"""API keys in the back office: Support sees them, Operations revokes them, nobody sees a
secret (only its hash is stored, and not even that is shown). And the user admin's password
form, which ends the user's API keys with the old password unless staff keep them."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.forms import AdminPasswordChangeForm
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.models import ApiKey
from accounts.services import change_password, revoke_api_keys
from accounts.tokens import key_matches_password
from core.admin import ReadOnlyMixin, SafeChangelistMixin

REVOKE_PERMISSION = "accounts.revoke_apikey"
SHOWN_FIELDS = ("key_id", "user", "name", "created_at", "revoked_at", "revoked_by")


def key_state(api_key: ApiKey) -> str:
    """active, revoked, or ended by a password change (not revoked, but bound to an old
    password: accounts/tokens.py). Reads the key's user, which the lists load with the key."""
    if api_key.revoked_at is not None:
        return "revoked"
    if not key_matches_password(api_key.password_fingerprint, api_key.user):
        return "ended: password changed"
    return "active"


class RevokedFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "active"), ("revoked", "revoked")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(SafeChangelistMixin, admin.ModelAdmin):
    list_display = (*SHOWN_FIELDS, "state")
    list_select_related = ("user", "revoked_by")
    list_filter = (RevokedFilter, "created_at")
    search_fields = ("key_id", "user__username", "name")
    fields = (*SHOWN_FIELDS, "state")
    readonly_fields = fields
    actions = ("revoke_keys",)
    list_per_page = 50

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # keys are made by their owner, who alone sees the secret

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoked, never deleted: the audit trail keeps who revoked what

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(REVOKE_PERMISSION)

    @admin.display(description="state")
    def state(self, obj: ApiKey) -> str:
        return key_state(obj)

    @admin.action(description="Revoke selected API keys", permissions=["revoke"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        key_ids = list(queryset.values_list("key_id", flat=True))
        revoked = revoke_api_keys(key_ids=key_ids, actor=request.user)
        already = len(key_ids) - revoked
        message = f"Revoked {revoked} API key(s)."
        if already:
            message += f" {already} selected key(s) were already revoked and were left as they were."
        self.message_user(request, message, messages.SUCCESS)


class ApiKeyInline(ReadOnlyMixin, admin.TabularInline):
    """A user's API keys on the user's page, read-only; revoke them from the API keys list."""

    model = ApiKey
    fk_name = "user"
    fields = ("key_id", "name", "created_at", "revoked_at", "revoked_by", "state")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user", "revoked_by")

    @admin.display(description="state")
    def state(self, obj: ApiKey) -> str:
        return key_state(obj)


class KeepApiKeysPasswordChangeForm(AdminPasswordChangeForm):
    """Django's admin password form (also "Disable password-based authentication"), through
    ``accounts.services.change_password``: the user's tokens and sessions end with the old
    password, and so do the API keys unless "Keep the user's API keys" is ticked. Shown by
    templates/admin/auth/user/change_password_keep_keys.html."""

    keep_api_keys = forms.BooleanField(
        required=False,
        label="Keep the user's API keys",
        help_text="Leave unticked when the account may be compromised: every API key then ends with the old "
        "password. Ticked, the user's programs keep trading with their keys.",
    )

    def save(self, commit=True):
        if not commit:
            return super().save(commit=False)
        raw_password = self.cleaned_data["password1"] if self.cleaned_data["set_usable_password"] else None
        change_password(user=self.user, raw_password=raw_password, keep_api_keys=self.cleaned_data["keep_api_keys"])
        return self.user
