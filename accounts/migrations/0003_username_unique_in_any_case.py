"""Usernames are unique in any case: "Alice" and "alice" are one name.

Django's own index on ``auth_user.username`` is case-sensitive, so a check in Python
(``username__iexact``) could not stop two registrations racing with "Alice" and "alice": both
passed it and both inserted. This index makes the database decide; ``register_user`` answers
its violation with the same 400 as any taken name.

The build fails, and names the pair, if the table already holds two names that differ only
in case: those need a rename first.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_api_key_permissions"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RunSQL(
            "CREATE UNIQUE INDEX auth_user_username_lower_uniq ON auth_user (lower(username))",
            reverse_sql="DROP INDEX auth_user_username_lower_uniq",
        )
    ]
