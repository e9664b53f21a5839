"""Paper account resets (docs/DESIGN.md, "Reset and exports"): RESET rows in both ledgers (a
cash row of any amount, zero included; an asset row taking quantity out), and the
AccountReset record, append-only like the ledgers (the trigger function of 0004).

The cash ledger's partial index for the activity feed takes RESET rows in 0008, concurrently.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('assets', '0002_price_record'),
        ('balances', '0006_held_help_names_stop_orders'),
        ('orders', '0009_order_event_record'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='AccountReset',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField()),
                ('cash', models.DecimalField(decimal_places=2, help_text='The USD balance the reset set.', max_digits=20)),
                ('cancelled_orders', models.JSONField(blank=True, default=list)),
                ('positions', models.JSONField(blank=True, default=list)),
                ('client_reference', models.CharField(blank=True, max_length=64, null=True)),
                ('reason', models.TextField(blank=True, default='')),
            ],
            options={
                'ordering': ['-created_at', '-id'],
                'permissions': [('reset_account', "Can reset a user's paper account")],
            },
        ),
        migrations.RemoveConstraint(
            model_name='assettransaction',
            name='asset_tx_quantity_positive',
        ),
        migrations.RemoveConstraint(
            model_name='cashtransaction',
            name='cash_tx_amount_sign_matches_type',
        ),
        migrations.AlterField(
            model_name='assettransaction',
            name='transaction_type',
            field=models.CharField(choices=[('BUY', 'Buy'), ('SELL', 'Sell'), ('ADJUSTMENT', 'Adjustment'), ('RESET', 'Reset')], max_length=16),
        ),
        migrations.AlterField(
            model_name='cashtransaction',
            name='transaction_type',
            field=models.CharField(choices=[('DEPOSIT', 'Deposit'), ('WITHDRAWAL', 'Withdrawal'), ('BUY', 'Buy'), ('SELL', 'Sell'), ('ADJUSTMENT', 'Adjustment'), ('RESET', 'Reset')], max_length=16),
        ),
        migrations.AddConstraint(
            model_name='assettransaction',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('quantity__gt', 0), ('transaction_type__in', ['BUY', 'SELL'])), models.Q(('transaction_type', 'ADJUSTMENT'), models.Q(('quantity', 0), _negated=True)), models.Q(('quantity__lt', 0), ('transaction_type', 'RESET')), _connector='OR'), name='asset_tx_quantity_positive'),
        ),
        migrations.AddConstraint(
            model_name='cashtransaction',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('amount__gt', 0), ('transaction_type__in', ['DEPOSIT', 'SELL'])), models.Q(('amount__lt', 0), ('transaction_type__in', ['WITHDRAWAL', 'BUY'])), models.Q(('transaction_type', 'ADJUSTMENT'), models.Q(('amount', 0), _negated=True)), ('transaction_type', 'RESET'), _connector='OR'), name='cash_tx_amount_sign_matches_type'),
        ),
        migrations.AddField(
            model_name='accountreset',
            name='actor',
            field=models.ForeignKey(blank=True, help_text='The staff member who reset the account from the back office.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='accountreset',
            name='cash_transaction',
            field=models.OneToOneField(help_text='Its RESET cash row.', on_delete=django.db.models.deletion.PROTECT, related_name='account_reset', to='balances.cashtransaction'),
        ),
        migrations.AddField(
            model_name='accountreset',
            name='user',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='account_resets', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddIndex(
            model_name='accountreset',
            index=models.Index(fields=['user', '-created_at'], name='account_reset_user_newest'),
        ),
        migrations.AddConstraint(
            model_name='accountreset',
            constraint=models.UniqueConstraint(condition=models.Q(('client_reference__isnull', False)), fields=('user', 'client_reference'), name='account_reset_client_reference_unique_per_user'),
        ),
        migrations.AddConstraint(
            model_name='accountreset',
            constraint=models.CheckConstraint(condition=models.Q(('cash__gte', 0)), name='account_reset_cash_not_negative'),
        ),
        migrations.RunSQL(
            sql=(
                "CREATE TRIGGER account_reset_append_only BEFORE UPDATE OR DELETE ON balances_accountreset "
                "FOR EACH ROW EXECUTE FUNCTION ledger_row_is_append_only();"
            ),
            reverse_sql="DROP TRIGGER account_reset_append_only ON balances_accountreset;",
        ),
    ]
