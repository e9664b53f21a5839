"""Make a user back-office staff in one of the groups of the back office.

    python manage.py add_staff_to_group USERNAME {Support,Operations} [--create]

``--create`` first creates the account when there is none, with a generated password that
is printed once (staff then change it under "Change password" in the admin). The groups
and their permissions come from migration ``balances.0002_staff_groups``.
"""

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

STAFF_GROUPS = ("Support", "Operations")


class Command(BaseCommand):
    help = "Mark a user as staff and add them to the Support or Operations group (--create: new account)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("group", choices=STAFF_GROUPS)
        parser.add_argument(
            "--create", action="store_true", help="Create the account if it does not exist (prints its password)."
        )

    def handle(self, *args, username: str, group: str, create: bool, **options):
        User = get_user_model()
        password = None
        with transaction.atomic():
            staff_group = Group.objects.filter(name=group).first()
            if staff_group is None:
                raise CommandError(f"Group {group!r} does not exist; run `python manage.py migrate` first.")
            user = User.objects.select_for_update().filter(username=username).first()
            if user is None and not create:
                raise CommandError(f"No user named {username!r}; add --create to create the account.")
            if user is None:
                password = secrets.token_urlsafe(12)
                user = User.objects.create_user(username=username, password=password, is_staff=True)
            if not user.is_staff:
                user.is_staff = True
                user.save(update_fields=["is_staff"])
            user.groups.add(staff_group)
        self.stdout.write(self.style.SUCCESS(f"{username} is staff and in {group}."))
        if password is not None:
            self.stdout.write(f"  log in at /admin/ as {username} with password {password}")
