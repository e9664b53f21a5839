"""Operations reset users' paper accounts from the back office; Support sees the resets and
never makes one (docs/DESIGN.md, "Permissions").

Adds to the groups of ``0002_staff_groups`` (which sets each group's permissions outright).
Permissions are normally created after all migrations ran, so the app's are created here
first, as 0002 does.
"""

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import migrations

GRANTS = {
    "Support": ["view_accountreset"],
    "Operations": ["view_accountreset", "reset_account"],
}


def grant_reset_permissions(apps, schema_editor):
    using = schema_editor.connection.alias if schema_editor is not None else "default"
    create_permissions(global_apps.get_app_config("balances"), verbosity=0, using=using, apps=apps)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, codenames in GRANTS.items():
        group, _ = Group.objects.using(using).get_or_create(name=group_name)
        group.permissions.add(
            *Permission.objects.using(using).filter(content_type__app_label="balances", codename__in=codenames)
        )


def remove_reset_permissions(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    using = schema_editor.connection.alias
    for group in Group.objects.using(using).filter(name__in=list(GRANTS)):
        group.permissions.remove(
            *Permission.objects.using(using).filter(content_type__app_label="balances", codename__in=GRANTS[group.name])
        )


class Migration(migrations.Migration):
    dependencies = [("balances", "0008_cash_tx_not_fills_index")]

    operations = [migrations.RunPython(grant_reset_permissions, remove_reset_permissions)]
