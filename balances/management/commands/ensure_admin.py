"""Make sure an admin login exists for `make run`, with a generated password (never a fixed
default). The login is printed and kept in .data/admin-login.txt (readable by the owner only)
so later runs can show it again."""

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction


class Command(BaseCommand):
    help = "Create an 'admin' superuser with a generated password if no superuser exists."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username: str, **options):
        login_file = Path(settings.BASE_DIR) / ".data" / "admin-login.txt"
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            if not login_file.exists():
                login_file.parent.mkdir(parents=True, exist_ok=True)
                login_file.write_text("Admin:    log in with your existing superuser\n")
            self.stdout.write(login_file.read_text().strip())
            return
        password = secrets.token_urlsafe(12)
        with transaction.atomic():
            User.objects.create_superuser(username=username, email="", password=password)
        login_file.parent.mkdir(parents=True, exist_ok=True)
        login_file.write_text(f"Login:    {username} / {password}\n")
        login_file.chmod(0o600)
        self.stdout.write(self.style.SUCCESS(f"Created superuser {username!r} with password {password}"))
