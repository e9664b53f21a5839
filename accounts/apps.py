from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """How clients prove who they are: API tokens bound to the password, API keys for
    programs. Imports nothing but ``core`` (balances imports it to issue the first token)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"
