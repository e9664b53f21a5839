from django.apps import AppConfig


class AlpacaCompatConfig(AppConfig):
    name = "alpaca_compat"
    verbose_name = "Alpaca-compatible API"

    def ready(self) -> None:
        # drf-spectacular learns the key headers from an extension registered on import.
        from alpaca_compat import openapi  # noqa: F401
