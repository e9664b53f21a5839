"""Orders carry what has filled of them: partial fills of resting orders (docs/DESIGN.md, "Fill model")."""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0005_api_key_password_fingerprint_check'),
        ('assets', '0004_last_good_price_volume'),
        ('orders', '0011_operations_set_fill_models'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='order',
            name='filled_quantity',
            field=models.DecimalField(db_default=0, decimal_places=18, default=0, max_digits=38),
        ),
        # Every order filled so far filled whole (docs/DESIGN.md, "Fill model").
        migrations.RunSQL(
            "UPDATE orders_order SET filled_quantity = quantity WHERE status = 'COMPLETED'",
            migrations.RunSQL.noop,
        ),
        migrations.AlterField(
            model_name='order',
            name='executed_price',
            field=models.DecimalField(blank=True, decimal_places=12, help_text="The fill's price (its fills' average so far).", max_digits=30, null=True),
        ),
        migrations.AlterField(
            model_name='order',
            name='total_amount',
            field=models.DecimalField(blank=True, decimal_places=2, help_text='USD of the fill (of its fills so far).', max_digits=20, null=True),
        ),
        migrations.AddConstraint(
            model_name='order',
            constraint=models.CheckConstraint(condition=models.Q(('filled_quantity__gte', 0), ('filled_quantity__lte', models.F('quantity')), models.Q(models.Q(('status', 'COMPLETED'), _negated=True), ('filled_quantity', models.F('quantity')), _connector='OR')), name='order_remaining_fits_status'),
        ),
    ]
