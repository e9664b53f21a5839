"""Operations set an account's fill model on the admin's user page; Support only sees it
(docs/DESIGN.md, "Fill model"). As 0008 does, creates the app's permissions first, since
they are normally created after all migrations ran."""

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import migrations

GRANTS = {"Operations": ["view_accountfillmodel", "change_accountfillmodel"], "Support": ["view_accountfillmodel"]}


def grant(apps, schema_editor):
    using = schema_editor.connection.alias if schema_editor is not None else "default"
    create_permissions(global_apps.get_app_config("orders"), verbosity=0, using=using, apps=apps)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, codenames in GRANTS.items():
        group, _ = Group.objects.using(using).get_or_create(name=group_name)
        group.permissions.add(
            *Permission.objects.using(using).filter(content_type__app_label="orders", codename__in=codenames)
        )


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    using = schema_editor.connection.alias
    for group in Group.objects.using(using).filter(name__in=list(GRANTS)):
        group.permissions.remove(
            *Permission.objects.using(using).filter(content_type__app_label="orders", codename__in=GRANTS[group.name])
        )


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0010_account_fill_model"),
        ("balances", "0002_staff_groups"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
