"""Alpaca's names for our assets: ``BTC/USD`` symbols and a stable UUID per asset.

Alpaca writes a crypto pair ``BTC/USD`` in orders, assets and market data and ``BTCUSD`` in
positions; programs send either, or the asset's UUID. Every asset here is priced in USD, so
a pair is its asset id with ``/USD``. The UUID is derived from the asset id (uuid5), so it is
the same on every server and after every re-seed, and needs no column.
"""

from __future__ import annotations

import functools
import uuid

from assets.selectors import get_asset, get_asset_ids

# A fixed namespace: changing it would change every asset's id that programs may have stored.
ASSET_NAMESPACE = uuid.UUID("6f1a3c52-9d0e-5b7a-8c4d-2e9f7a1b3c5d")
QUOTE_CURRENCY = "USD"


# Every order and position rendered names its asset's UUID: hashed once per asset, not per
# answer (asset ids come from our rows, so the cache holds at most one per listed asset).
@functools.lru_cache(maxsize=4096)
def asset_uuid(asset_id: str) -> uuid.UUID:
    return uuid.uuid5(ASSET_NAMESPACE, asset_id)


def pair_symbol(asset_id: str) -> str:
    """``BTC/USD``: how Alpaca writes a crypto pair in orders, assets and market data."""
    return f"{asset_id}/{QUOTE_CURRENCY}"


def position_symbol(asset_id: str) -> str:
    """``BTCUSD``: how Alpaca writes a crypto pair in positions and activities."""
    return f"{asset_id}{QUOTE_CURRENCY}"


def asset_id_for(text: str) -> str | None:
    """Our asset id for ``BTC/USD``, ``BTCUSD`` or the asset's UUID; None when it names no
    asset priced in USD. The UUID form costs one query (the inventory is a few dozen rows)."""
    text = text.strip()
    try:
        wanted = uuid.UUID(text)
    except ValueError:
        pass
    else:
        return next((asset_id for asset_id in get_asset_ids() if asset_uuid(asset_id) == wanted), None)
    upper = text.upper()
    base, slash, quote = upper.partition("/")
    if slash:
        return base if quote == QUOTE_CURRENCY and base.isalnum() else None
    if upper.endswith(QUOTE_CURRENCY) and len(upper) > len(QUOTE_CURRENCY) and upper.isalnum():
        return upper[: -len(QUOTE_CURRENCY)]
    return None


def pair_hint(text: str) -> str:
    """`` (did you mean "BTC/USD"?)`` when ``text`` is an asset's bare id (Alpaca's crypto
    symbols are pairs), else nothing: for the message that refuses it."""
    upper = text.strip().upper()
    if upper.isascii() and upper.isalnum() and len(upper) <= 16 and get_asset(upper) is not None:
        return f' (did you mean "{pair_symbol(upper)}"?)'
    return ""
