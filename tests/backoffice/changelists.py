"""The back office's changelists, named once for the tests that visit them all."""

# What staff work with: users, assets, orders, balances, both ledgers and account resets.
BACK_OFFICE_CHANGELISTS = [
    "admin:auth_user_changelist",
    "admin:assets_asset_changelist",
    "admin:orders_order_changelist",
    "admin:balances_usdbalance_changelist",
    "admin:balances_assetbalance_changelist",
    "admin:balances_cashtransaction_changelist",
    "admin:balances_assettransaction_changelist",
    "admin:balances_accountreset_changelist",
]

# Every registered changelist, with Django's groups, DRF's tokens and the API keys.
ALL_CHANGELISTS = [
    *BACK_OFFICE_CHANGELISTS,
    "admin:auth_group_changelist",
    "admin:authtoken_tokenproxy_changelist",
    "admin:accounts_apikey_changelist",
]
