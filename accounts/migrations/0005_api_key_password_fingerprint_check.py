"""Every API key carries a password fingerprint (0004 stamped the existing ones)."""

import django.db.models.functions.text
import django.db.models.lookups
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_api_key_password_fingerprint"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="apikey",
            constraint=models.CheckConstraint(
                condition=django.db.models.lookups.Exact(
                    django.db.models.functions.text.Length("password_fingerprint"), 64
                ),
                name="api_key_password_fingerprint_is_hmac",
            ),
        ),
    ]
