"""Small helpers shared by the API tests."""

from decimal import Decimal

from django.utils import timezone

from assets.prices import Quote, store_quotes


def set_price(asset_id: str, price: str | Decimal, *, source: str = "test") -> Quote:
    """Put a fresh market price in the cache, as if the provider had just answered."""
    quote = Quote(asset_id=asset_id, price=Decimal(price), as_of=timezone.now(), source=source)
    store_quotes([quote])
    return quote


def error_code(response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]["code"]
