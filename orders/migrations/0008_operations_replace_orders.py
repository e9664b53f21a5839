"""Operations replace PENDING orders on a user's behalf through the API; Support views and
cancels them and never replaces (docs/DESIGN.md, "Permissions").

Adds to the groups of ``balances.0002_staff_groups`` (which it runs after, since that one
sets each group's permissions outright). Permissions are normally created after all
migrations ran, so the app's are created here first, as balances.0002 does.
"""

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import migrations

GRANTS = {"Operations": ["replace_order"]}


def grant_replace_order(apps, schema_editor):
    using = schema_editor.connection.alias if schema_editor is not None else "default"
    create_permissions(global_apps.get_app_config("orders"), verbosity=0, using=using, apps=apps)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, codenames in GRANTS.items():
        group, _ = Group.objects.using(using).get_or_create(name=group_name)
        group.permissions.add(
            *Permission.objects.using(using).filter(content_type__app_label="orders", codename__in=codenames)
        )


def remove_replace_order(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    using = schema_editor.connection.alias
    for group in Group.objects.using(using).filter(name__in=list(GRANTS)):
        group.permissions.remove(
            *Permission.objects.using(using).filter(content_type__app_label="orders", codename__in=GRANTS[group.name])
        )


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0007_order_actor_and_replace_permission"),
        ("balances", "0002_staff_groups"),
    ]

    operations = [migrations.RunPython(grant_replace_order, remove_replace_order)]
