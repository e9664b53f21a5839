"""API keys are bound to their owner's password, as tokens are (accounts/tokens.py): each key
stores a fingerprint of the password hash it was made under, and a password change ends the
keys unless the user keeps them.

Existing keys are stamped with their owner's current password hash, so every key that works
before this migration works after it. The fingerprint is the HMAC of accounts/tokens.py under
the SECRET_KEY the migration runs with (keys stamped under a key later moved to
SECRET_KEY_FALLBACKS still verify). The column is added with an empty default for the rows
already there, filled, and then checked (0005), in separate migrations so that PostgreSQL
never alters a table with the fill's row updates pending in the same transaction.
"""

from django.db import migrations, models

from accounts.tokens import password_fingerprint


def stamp_existing_keys(apps, schema_editor):
    ApiKey = apps.get_model("accounts", "ApiKey")
    using = schema_editor.connection.alias
    for key in ApiKey.objects.using(using).select_related("user"):
        ApiKey.objects.using(using).filter(pk=key.pk).update(
            password_fingerprint=password_fingerprint(user_id=key.user.pk, password_hash=key.user.password)
        )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_username_unique_in_any_case"),
    ]

    operations = [
        migrations.AddField(
            model_name="apikey",
            name="password_fingerprint",
            field=models.CharField(
                default="",
                editable=False,
                help_text="HMAC of the owner's password hash the key is bound to, hex.",
                max_length=64,
            ),
            preserve_default=False,
        ),
        migrations.RunPython(stamp_existing_keys, migrations.RunPython.noop),
    ]
