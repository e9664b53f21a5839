"""The back-office groups (README, "Back office (Django admin)") and the two custom permissions they need.

* ``Support``: view everything in the admin, cancel orders.
* ``Operations``: Support's permissions, plus add and change assets and adjust balances.

The custom permissions live on existing content types (models cannot carry them in their
``Meta`` without a model change): ``balances.adjust_balance`` on ``UsdBalance`` and
``orders.cancel_order`` on ``Order``.

Permissions are normally created by a ``post_migrate`` signal, i.e. after *all*
migrations ran, so on a fresh database they do not exist yet when this migration runs.
It therefore creates the content types and default permissions of the apps it needs
first (``create_permissions`` is idempotent). ``create_staff_groups`` also accepts the
global app registry, so tests can restore the groups after a transactional test flushed
the database.
"""

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import migrations

CUSTOM_PERMISSIONS = {
    # (app_label, model): [(codename, name)]
    ("balances", "usdbalance"): [("adjust_balance", "Can adjust balances (writes an ADJUSTMENT ledger row)")],
    ("orders", "order"): [("cancel_order", "Can cancel pending orders")],
}

SUPPORT_PERMISSIONS = [
    ("auth", "view_user"),
    ("assets", "view_asset"),
    ("balances", "view_usdbalance"),
    ("balances", "view_assetbalance"),
    ("balances", "view_cashtransaction"),
    ("balances", "view_assettransaction"),
    ("orders", "view_order"),
    ("orders", "cancel_order"),
]

OPERATIONS_PERMISSIONS = [
    *SUPPORT_PERMISSIONS,
    ("assets", "add_asset"),
    ("assets", "change_asset"),
    ("balances", "adjust_balance"),
]

GROUPS = {"Support": SUPPORT_PERMISSIONS, "Operations": OPERATIONS_PERMISSIONS}


def create_staff_groups(apps, schema_editor):
    using = schema_editor.connection.alias if schema_editor is not None else "default"
    for label in ("contenttypes", "auth", "assets", "balances", "orders"):
        # The global config passes create_permissions' "has models" check; the models
        # themselves are then read from ``apps`` (the historical registry in a migration).
        create_permissions(global_apps.get_app_config(label), verbosity=0, using=using, apps=apps)

    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")

    for (app_label, model), permissions in CUSTOM_PERMISSIONS.items():
        content_type, _ = ContentType.objects.using(using).get_or_create(app_label=app_label, model=model)
        for codename, name in permissions:
            Permission.objects.using(using).update_or_create(
                content_type=content_type, codename=codename, defaults={"name": name}
            )

    for group_name, wanted in GROUPS.items():
        group, _ = Group.objects.using(using).get_or_create(name=group_name)
        permissions = []
        for app_label, codename in wanted:
            permissions.append(
                Permission.objects.using(using).get(content_type__app_label=app_label, codename=codename)
            )
        group.permissions.set(permissions)


def remove_staff_groups(apps, schema_editor):
    using = schema_editor.connection.alias
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    Group.objects.using(using).filter(name__in=list(GROUPS)).delete()
    for (app_label, _model), permissions in CUSTOM_PERMISSIONS.items():
        Permission.objects.using(using).filter(
            content_type__app_label=app_label, codename__in=[codename for codename, _ in permissions]
        ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("assets", "0001_initial"),
        ("balances", "0001_initial"),
        ("orders", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_staff_groups, remove_staff_groups)]
