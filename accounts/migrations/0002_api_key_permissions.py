"""Support views API keys; Operations also revokes them (docs/DESIGN.md, "Permissions").

Adds to the groups of ``balances.0002_staff_groups`` (which it runs after, since that one
sets each group's permissions outright). Permissions are normally created after all
migrations ran, so the app's are created here first, as balances.0002 does.
"""

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import migrations

GRANTS = {
    "Support": ["view_apikey"],
    "Operations": ["view_apikey", "revoke_apikey"],
}


def grant_api_key_permissions(apps, schema_editor):
    using = schema_editor.connection.alias if schema_editor is not None else "default"
    create_permissions(global_apps.get_app_config("accounts"), verbosity=0, using=using, apps=apps)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, codenames in GRANTS.items():
        group, _ = Group.objects.using(using).get_or_create(name=group_name)
        group.permissions.add(
            *Permission.objects.using(using).filter(content_type__app_label="accounts", codename__in=codenames)
        )


def remove_api_key_permissions(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    using = schema_editor.connection.alias
    for group in Group.objects.using(using).filter(name__in=list(GRANTS)):
        group.permissions.remove(
            *Permission.objects.using(using).filter(content_type__app_label="accounts", codename__in=GRANTS[group.name])
        )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("balances", "0002_staff_groups"),
    ]

    operations = [migrations.RunPython(grant_api_key_permissions, remove_api_key_permissions)]
