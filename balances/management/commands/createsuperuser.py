"""Django's createsuperuser, run in one transaction so that the new user's funded USD
balance commits together with the user (docs/DESIGN.md, "Ledgers")."""

from django.contrib.auth.management.commands.createsuperuser import Command as DjangoCreateSuperuser
from django.db import transaction


class Command(DjangoCreateSuperuser):
    def handle(self, *args, **options):
        with transaction.atomic():
            return super().handle(*args, **options)
