"""Reads of the asset inventory."""

from __future__ import annotations

import time

from assets.models import Asset

# Every order reads its asset; the inventory changes a few times a day. Each process keeps
# what it read for ASSET_CACHE_SECONDS, so an operator's change (say, suspending trading)
# reaches every server process within that long. Only assets that exist are kept, so
# requests for made-up ids cannot grow the cache.
ASSET_CACHE_SECONDS = 2.0
_recent: dict[str, tuple[float, Asset]] = {}


def get_asset(asset_id: str) -> Asset | None:
    """The asset, as read from the database at most ASSET_CACHE_SECONDS ago; None if unknown."""
    now = time.monotonic()
    hit = _recent.get(asset_id)
    if hit is not None and hit[0] > now:
        return hit[1]
    asset = Asset.objects.filter(pk=asset_id).first()
    if asset is not None:
        _recent[asset_id] = (now + ASSET_CACHE_SECONDS, asset)
    return asset


def forget_assets() -> None:
    """Drop this process's recent reads (after this process changed the inventory)."""
    _recent.clear()
