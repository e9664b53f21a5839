from django.apps import AppConfig
from django.db.models.signals import post_save


class BalancesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "balances"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model

        from balances.services import open_usd_balance_for_new_user

        # The one signal in the project, and on purpose: users are also created by code we
        # do not own (admin, createsuperuser, `create_user` in shells and tests), and every
        # one of them must get its funded USD balance. Our own paths (registration, our
        # createsuperuser, admin) run inside transaction.atomic, so the balance and its
        # DEPOSIT row commit with the user or not at all.
        post_save.connect(
            open_usd_balance_for_new_user, sender=get_user_model(), dispatch_uid="balances_open_usd_balance"
        )
