"""Services that write the asset inventory."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from assets.models import DAILY_VOLATILITY_DECIMALS, MAX_DAILY_VOLATILITY, Asset
from assets.selectors import forget_assets
from core.exceptions import InvalidRequest
from core.money import PRICE, decimal_places

BUNDLED_ASSETS_FILE = Path(__file__).resolve().parent / "data" / "assets.json"

ASSET_ID_RE = re.compile(r"^[A-Z0-9]{1,16}$")
REQUIRED_COLUMNS = ("asset_id", "name", "reference_price")
OPTIONAL_COLUMNS = ("coingecko_id", "quantity_decimals", "is_active", "daily_volatility")
COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
TRUE_WORDS = {"true", "1", "yes", "y"}
FALSE_WORDS = {"false", "0", "no", "n"}


class InvalidAssetRows(InvalidRequest):
    """Some rows of an asset list are unusable; ``errors`` says which and why, one line each."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(f"{len(errors)} invalid asset row(s).", details={"rows": errors})
        self.errors = errors


@dataclass(frozen=True)
class SeedReport:
    """The asset ids that ``upsert_assets`` created, updated and left unchanged."""

    created: tuple[str, ...]
    updated: tuple[str, ...]
    unchanged: tuple[str, ...]

    def __str__(self) -> str:
        return f"created {len(self.created)}, updated {len(self.updated)}, unchanged {len(self.unchanged)}"


def upsert_assets(rows: Sequence[Mapping[str, object]], *, labels: Sequence[str] | None = None) -> SeedReport:
    """Create or update assets from rows of ``COLUMNS``, all or nothing.

    Every row is validated before anything is written; one bad row raises InvalidAssetRows
    (each error prefixed by the row's label, e.g. "line 4" for a CSV) and writes nothing.
    Optional columns that a row leaves out or blank keep the stored value (or the model
    default for a new asset). Locks the existing rows it reads (SELECT ... FOR UPDATE, by
    asset_id). Two seeds racing to *create* the same asset: one fails on the primary key
    and rolls back; running it again is harmless.
    """
    labels = list(labels) if labels is not None else [f"row {n}" for n in range(1, len(rows) + 1)]
    cleaned = _clean_rows(rows, labels)
    created, updated, unchanged = [], [], []
    with transaction.atomic(durable=True):
        ids = sorted(fields["asset_id"] for fields in cleaned)
        existing = {a.asset_id: a for a in Asset.objects.select_for_update().filter(pk__in=ids).order_by("pk")}
        for fields in cleaned:
            asset = existing.get(fields["asset_id"])
            if asset is None:
                Asset.objects.create(**fields)
                created.append(fields["asset_id"])
                continue
            changed = [name for name, value in fields.items() if getattr(asset, name) != value]
            if not changed:
                unchanged.append(asset.asset_id)
                continue
            for name in changed:
                setattr(asset, name, fields[name])
            asset.save(update_fields=[*changed, "updated_at"])
            updated.append(asset.asset_id)
    forget_assets()
    return SeedReport(tuple(created), tuple(updated), tuple(unchanged))


def set_tradable(*, asset_ids: Sequence[str], active: bool) -> list[str]:
    """Make assets tradable (or suspend them); returns the ids that changed. This process
    sees the change at once; other server processes within ASSET_CACHE_SECONDS."""
    now = timezone.now()
    with transaction.atomic(durable=True):
        changed = list(
            Asset.objects.select_for_update()
            .filter(pk__in=asset_ids, is_active=not active)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        Asset.objects.filter(pk__in=changed).update(is_active=active, updated_at=now)
    forget_assets()
    return changed


def _clean_rows(rows: Sequence[Mapping[str, object]], labels: Sequence[str]) -> list[dict[str, object]]:
    errors: list[str] = []
    cleaned: list[dict[str, object]] = []
    seen: dict[str, str] = {}
    for label, row in zip(labels, rows, strict=True):
        try:
            fields = _clean_row(row)
        except ValueError as exc:
            errors.append(f"{label}: {exc}")
            continue
        asset_id = fields["asset_id"]
        if asset_id in seen:
            errors.append(f"{label}: asset_id {asset_id} repeats {seen[asset_id]}")
            continue
        seen[asset_id] = label
        cleaned.append(fields)
    if errors:
        raise InvalidAssetRows(errors)
    return cleaned


def _clean_row(row: Mapping[str, object]) -> dict[str, object]:
    """The model fields of one row; raises ValueError naming every problem of the row."""
    if not isinstance(row, Mapping):
        raise ValueError(f"expected an object with columns {', '.join(COLUMNS)}")
    problems: list[str] = []
    unknown = sorted(str(name) for name in row if name not in COLUMNS)
    if unknown:
        problems.append(f"unknown column(s) {', '.join(unknown)}")
    fields: dict[str, object] = {}
    for name in COLUMNS:
        value = row.get(name)
        if isinstance(value, str):
            value = value.strip()
        if value is None or value == "":
            if name in REQUIRED_COLUMNS:
                problems.append(f"{name} is required")
            continue
        try:
            fields[name] = CLEANERS[name](value)
        except ValueError as exc:
            problems.append(f"{name} {value!r} {exc}")
    if problems:
        raise ValueError("; ".join(problems))
    return fields


def _asset_id(value: object) -> str:
    if not isinstance(value, str) or not ASSET_ID_RE.match(value):
        raise ValueError("must be 1 to 16 upper-case letters or digits")
    return value


def _text(max_length: int):
    def clean(value: object) -> str:
        if not isinstance(value, str) or len(value) > max_length:
            raise ValueError(f"must be text of at most {max_length} characters")
        return value

    return clean


def _reference_price(value: object) -> Decimal:
    # Text or an exact JSON number (read with parse_float=Decimal); never a float.
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError("must be a decimal number")
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        raise ValueError("must be a decimal number")
    if not price.is_finite() or price <= 0:
        raise ValueError("must be a positive number")
    if decimal_places(price) > PRICE.decimals:
        raise ValueError(f"has more than {PRICE.decimals} decimal places")
    if not PRICE.fits_integer_part(price):
        raise ValueError(f"has more than {PRICE.integer_digits} digits before the point")
    return price


def _daily_volatility(value: object) -> Decimal:
    # As reference_price: text or an exact JSON number, never a float.
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError("must be a decimal number")
    try:
        volatility = Decimal(str(value))
    except InvalidOperation:
        raise ValueError("must be a decimal number")
    if not volatility.is_finite() or not Decimal(0) <= volatility <= MAX_DAILY_VOLATILITY:
        raise ValueError(f"must be a fraction from 0 to {MAX_DAILY_VOLATILITY} (0.03 is 3 % a day)")
    if decimal_places(volatility) > DAILY_VOLATILITY_DECIMALS:
        raise ValueError(f"has more than {DAILY_VOLATILITY_DECIMALS} decimal places")
    return volatility


def _quantity_decimals(value: object) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 18:
        raise ValueError("must be a whole number from 0 to 18")
    return value


def _is_active(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in TRUE_WORDS | FALSE_WORDS:
        return value.lower() in TRUE_WORDS
    raise ValueError("must be true or false")


CLEANERS = {
    "asset_id": _asset_id,
    "name": _text(100),
    "coingecko_id": _text(100),
    "reference_price": _reference_price,
    "quantity_decimals": _quantity_decimals,
    "daily_volatility": _daily_volatility,
    "is_active": _is_active,
}
