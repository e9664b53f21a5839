from django.apps import AppConfig


class BackofficeConfig(AppConfig):
    """Admin pages that need several apps (users with their money); see backoffice/admin.py."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "backoffice"
