"""API keys for programs (docs/DESIGN.md, "Permissions").

A key is a public ``key_id`` and a secret shown once, at creation. Only the secret's SHA-256
is stored: the secret is 40 random characters (about 238 bits), so no dictionary or brute
force applies and a slow password hash (PBKDF2, ~300 ms) would buy nothing but a slower
order path; one SHA-256 costs about a microsecond. Revoked keys stay, with who revoked them
and when, for the audit trail; they never authenticate again. A key is also bound to its
owner's password (``password_fingerprint``, accounts/tokens.py): a password change ends it
unless the owner keeps the keys explicitly.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Length
from django.db.models.lookups import Exact


class ApiKey(models.Model):
    key_id = models.CharField(primary_key=True, max_length=20, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    secret_hash = models.CharField(max_length=64, editable=False, help_text="SHA-256 of the secret, hex.")
    # HMAC of the owner's password hash when the key was made or last kept through a password
    # change (accounts/tokens.py): any other change of the password ends the key.
    password_fingerprint = models.CharField(
        max_length=64, editable=False, help_text="HMAC of the owner's password hash the key is bound to, hex."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at", "key_id"]
        indexes = [models.Index(fields=["user", "-created_at"], name="api_key_user_newest_first")]
        constraints = [
            models.CheckConstraint(condition=Exact(Length("secret_hash"), 64), name="api_key_secret_hash_is_sha256"),
            models.CheckConstraint(
                condition=Exact(Length("password_fingerprint"), 64), name="api_key_password_fingerprint_is_hmac"
            ),
            models.CheckConstraint(condition=~Q(name=""), name="api_key_name_not_empty"),
            models.CheckConstraint(
                condition=Q(revoked_by__isnull=True) | Q(revoked_at__isnull=False), name="api_key_revoker_when_revoked"
            ),
        ]
        permissions = [("revoke_apikey", "Can revoke API keys")]

    def __str__(self) -> str:
        return f"{self.key_id} ({self.name})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
