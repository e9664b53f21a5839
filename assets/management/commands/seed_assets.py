"""``python manage.py seed_assets [--file PATH]``: upsert the asset inventory.

Reads the bundled list (assets/data/assets.json) or a CSV (header row) or JSON (list of
objects) file with the columns asset_id, name, reference_price and optionally
coingecko_id, quantity_decimals, is_active, daily_volatility (the simulated market's typical
daily move, a fraction: 0.03 is 3 %). Writes nothing unless every row is valid.
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from assets.services import BUNDLED_ASSETS_FILE, InvalidAssetRows, upsert_assets


class Command(BaseCommand):
    help = "Create or update assets from the bundled list or a CSV/JSON file; idempotent."

    def add_arguments(self, parser):
        parser.add_argument(
            "--file", type=Path, default=BUNDLED_ASSETS_FILE, help="A .csv or .json file (default: the bundled list)."
        )

    def handle(self, *args, file: Path, **options):
        rows, labels = read_rows(file)
        try:
            report = upsert_assets(rows, labels=labels)
        except InvalidAssetRows as exc:
            raise CommandError(f"{file}: nothing written, {exc.message}\n" + "\n".join(exc.errors))
        self.stdout.write(str(report))
        if options["verbosity"] >= 2:
            for kind in ("created", "updated", "unchanged"):
                self.stdout.write(f"{kind}: {' '.join(getattr(report, kind)) or '-'}")


def read_rows(path: Path) -> tuple[list, list[str]]:
    """The file's rows and a label for each ("line 3" of a CSV, "item 2" of a JSON list)."""
    suffix = path.suffix.lower()
    if suffix not in {".csv", ".json"}:
        raise CommandError(f"{path}: expected a .csv or .json file.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"{path}: cannot read it: {exc}")
    if suffix == ".json":
        try:
            rows = json.loads(text, parse_float=Decimal)
        except ValueError as exc:
            raise CommandError(f"{path}: not valid JSON: {exc}")
        if not isinstance(rows, list):
            raise CommandError(f"{path}: expected a JSON list of objects.")
        return rows, [f"item {n}" for n in range(1, len(rows) + 1)]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows, labels = [], []
    for row in reader:
        if None in row:  # more cells than header columns
            extra = row.pop(None)
            row["extra cells"] = extra
        rows.append(row)
        labels.append(f"line {reader.line_num}")
    return rows, labels
