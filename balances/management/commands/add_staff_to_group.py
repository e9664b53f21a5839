"""Make a user back-office staff in one of the groups of SPEC section 7.

    python manage.py add_staff_to_group USERNAME {Support,Operations}

The groups and their permissions come from migration ``balances.0002_staff_groups``.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

STAFF_GROUPS = ("Support", "Operations")


class Command(BaseCommand):
    help = "Mark a user as staff and add them to the Support or Operations group."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("group", choices=STAFF_GROUPS)

    def handle(self, *args, username: str, group: str, **options):
        User = get_user_model()
        with transaction.atomic():
            user = User.objects.select_for_update().filter(username=username).first()
            if user is None:
                raise CommandError(f"No user named {username!r}.")
            staff_group = Group.objects.filter(name=group).first()
            if staff_group is None:
                raise CommandError(f"Group {group!r} does not exist; run `python manage.py migrate` first.")
            if not user.is_staff:
                user.is_staff = True
                user.save(update_fields=["is_staff"])
            user.groups.add(staff_group)
        self.stdout.write(self.style.SUCCESS(f"{username} is staff and in {group}."))
