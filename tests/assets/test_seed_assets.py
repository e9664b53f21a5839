"""``seed_assets`` and the ``upsert_assets`` service behind it."""

from __future__ import annotations

import json
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction

from assets.models import Asset
from assets.services import BUNDLED_ASSETS_FILE, InvalidAssetRows, upsert_assets

CSV_HEADER = "asset_id,name,coingecko_id,quantity_decimals,reference_price,is_active"


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_assets", *args, stdout=out)
    return out.getvalue().strip()


def csv_file(tmp_path, *rows: str) -> Path:
    """assets.csv with every column, one line a row."""
    path = tmp_path / "assets.csv"
    path.write_text("".join(f"{line}\n" for line in [CSV_HEADER, *rows]))
    return path


def test_bundled_list_has_well_known_assets_with_distinct_coingecko_ids():
    # when
    rows = json.loads(BUNDLED_ASSETS_FILE.read_text(), parse_float=Decimal)

    # then
    assert len(rows) >= 18
    assert len({row["asset_id"] for row in rows}) == len({row["coingecko_id"] for row in rows}) == len(rows)
    assert {"BTC", "ETH", "SOL", "XRP", "DOGE", "AVAX"} <= {row["asset_id"] for row in rows}
    assert next(row for row in rows if row["asset_id"] == "AVAX")["coingecko_id"] == "avalanche-2"


def test_seeding_the_bundled_list_creates_every_asset(db):
    # given
    expected = len(json.loads(BUNDLED_ASSETS_FILE.read_text()))

    # when
    output = seed()

    # then
    assert output == f"created {expected}, updated 0, unchanged 0"
    assert Asset.objects.count() == expected
    btc = Asset.objects.get(pk="BTC")
    assert (btc.name, btc.coingecko_id, btc.quantity_decimals, btc.is_active) == ("Bitcoin", "bitcoin", 8, True)
    assert btc.reference_price == Decimal("65000.00")
    assert Asset.objects.get(pk="SHIB").reference_price == Decimal("0.000018")
    assert (btc.daily_volatility, Asset.objects.get(pk="APT").daily_volatility) == (Decimal("0.03"), Decimal("0.065"))


def test_seeding_twice_leaves_everything_unchanged(db):
    # given
    seed()
    before = {a.asset_id: a.updated_at for a in Asset.objects.all()}

    # when
    output = seed()

    # then
    assert output == f"created 0, updated 0, unchanged {len(before)}"
    assert {a.asset_id: a.updated_at for a in Asset.objects.all()} == before


def test_seeding_restores_changed_fields_and_reports_them_updated(db):
    # given
    seed()
    total = Asset.objects.count()
    Asset.objects.filter(pk="BTC").update(reference_price=Decimal("1"), name="Bitcorn")
    Asset.objects.filter(pk="DOGE").update(quantity_decimals=5)

    # when
    output = seed("--verbosity", "2")

    # then
    assert output.splitlines()[:3] == [
        f"created 0, updated 2, unchanged {total - 2}",
        "created: -",
        "updated: BTC DOGE",
    ]
    btc = Asset.objects.get(pk="BTC")
    assert (btc.name, btc.reference_price) == ("Bitcoin", Decimal("65000.00"))
    assert Asset.objects.get(pk="DOGE").quantity_decimals == 2


def test_csv_file_creates_and_updates(btc, eth, tmp_path):
    # given BTC at 50000 and ETH at 2500
    path = csv_file(
        tmp_path,
        "BTC,Bitcoin,bitcoin,8,50000.000,true",
        "ETH,Ethereum,ethereum,8,2600.5,true",
        "TEST1,Test coin,,3,0.123456789012,false",
    )

    # when
    output = seed("--file", str(path))

    # then
    assert output == "created 1, updated 1, unchanged 1"
    assert Asset.objects.get(pk="ETH").reference_price == Decimal("2600.5")
    test = Asset.objects.get(pk="TEST1")
    assert (test.name, test.coingecko_id, test.quantity_decimals, test.is_active) == ("Test coin", "", 3, False)
    assert test.reference_price == Decimal("0.123456789012")


def test_optional_columns_left_out_keep_the_stored_values(db, make_asset, tmp_path):
    # given
    make_asset("BTC", name="Bitcoin", coingecko_id="bitcoin", reference_price=Decimal("50000"), is_active=False)
    path = tmp_path / "assets.csv"
    path.write_text("asset_id,name,reference_price\nBTC,Bitcoin,50000\nNEW,New coin,2\n")

    # when
    output = seed("--file", str(path))

    # then
    assert output == "created 1, updated 0, unchanged 1"
    btc = Asset.objects.get(pk="BTC")
    assert (btc.is_active, btc.coingecko_id) == (False, "bitcoin")
    new = Asset.objects.get(pk="NEW")
    assert (new.is_active, new.quantity_decimals, new.coingecko_id) == (True, 8, "")


def test_json_file_keeps_decimal_prices_exact(db, tmp_path):
    # given
    path = tmp_path / "assets.json"
    path.write_text(
        '[{"asset_id": "BTC", "name": "Bitcoin", "coingecko_id": "bitcoin",'
        ' "quantity_decimals": 8, "reference_price": 67187.335812345678, "is_active": true}]'
    )

    # when
    output = seed("--file", str(path))

    # then
    assert output == "created 1, updated 0, unchanged 0"
    assert str(Asset.objects.get(pk="BTC").reference_price) == "67187.335812345678"


def test_bad_csv_rows_are_all_reported_and_nothing_is_written(btc, tmp_path):
    # given BTC at 50000
    path = csv_file(
        tmp_path,
        "BTC,Bitcoin,bitcoin,8,1,true",
        "eth,Ethereum,ethereum,8,2500,true",
        "SOL,Solana,solana,19,-5,maybe",
        "ADA,Cardano,cardano,6,0.4500000000001,true",
        "BTC,Bitcoin again,bitcoin,8,1,true",
        "DOGE,,dogecoin,2,0.1,true,extra",
    )

    # when
    with pytest.raises(CommandError) as excinfo:
        seed("--file", str(path))

    # then
    assert str(excinfo.value).splitlines()[1:] == [
        "line 3: asset_id 'eth' must be 1 to 16 upper-case letters or digits",
        "line 4: reference_price '-5' must be a positive number; quantity_decimals '19' must be a whole number"
        " from 0 to 18; is_active 'maybe' must be true or false",
        "line 5: reference_price '0.4500000000001' has more than 12 decimal places",
        "line 6: asset_id BTC repeats line 2",
        "line 7: unknown column(s) extra cells; name is required",
    ]
    assert list(Asset.objects.values_list("asset_id", "reference_price")) == [("BTC", Decimal("50000"))]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param('{"asset_id": "BTC"}', "expected a JSON list of objects", id="not-a-list"),
        pytest.param("[{]", "not valid JSON", id="not-json"),
        pytest.param(
            '[{"asset_id": "BTC", "name": "Bitcoin", "reference_price": 1.5e400}]', "nothing written", id="huge"
        ),
        pytest.param('["BTC"]', "item 1: expected an object", id="not-an-object"),
        pytest.param('[{"asset_id": "BTC", "name": "B", "reference_price": "NaN"}]', "positive number", id="nan"),
    ],
)
def test_bad_json_file_is_rejected(db, tmp_path, content, message):
    # given
    path = tmp_path / "assets.json"
    path.write_text(content)

    # when
    with pytest.raises(CommandError, match=message):
        seed("--file", str(path))

    # then
    assert Asset.objects.count() == 0


def test_unknown_file_type_is_rejected(db, tmp_path):
    # given
    path = tmp_path / "assets.xml"
    path.write_text("<assets/>")

    # when / then
    with pytest.raises(CommandError, match=r"expected a \.csv or \.json file"):
        seed("--file", str(path))


def test_upsert_assets_treats_equal_decimals_as_unchanged(btc):
    # when: the stored BTC has reference_price 50000
    report = upsert_assets([{"asset_id": "BTC", "name": "Bitcoin", "reference_price": "50000.000000"}])

    # then
    assert (report.created, report.updated, report.unchanged) == ((), (), ("BTC",))


def test_daily_volatility_is_optional_and_refused_outside_0_to_20_percent(db):
    # when
    report = upsert_assets(
        [{"asset_id": "USDC", "name": "USD Coin", "reference_price": "1", "daily_volatility": "0.001"}]
    )
    with pytest.raises(InvalidAssetRows) as excinfo:
        upsert_assets(
            [
                {"asset_id": "A", "name": "a", "reference_price": "1", "daily_volatility": "0.21"},
                {"asset_id": "B", "name": "b", "reference_price": "1", "daily_volatility": "-0.01"},
                {"asset_id": "C", "name": "c", "reference_price": "1", "daily_volatility": "0.00001"},
                {"asset_id": "D", "name": "d", "reference_price": "1", "daily_volatility": 0.03},
            ]
        )

    # then
    assert report.created == ("USDC",)
    assert Asset.objects.get(pk="USDC").daily_volatility == Decimal("0.001")
    assert excinfo.value.errors == [
        "row 1: daily_volatility '0.21' must be a fraction from 0 to 0.2 (0.03 is 3 % a day)",
        "row 2: daily_volatility '-0.01' must be a fraction from 0 to 0.2 (0.03 is 3 % a day)",
        "row 3: daily_volatility '0.00001' has more than 4 decimal places",
        "row 4: daily_volatility 0.03 must be a decimal number",
    ]
    assert list(Asset.objects.values_list("asset_id", flat=True)) == ["USDC"]


def test_an_asset_moves_at_most_20_percent_a_day_in_the_database(btc):
    # when / then
    for volatility in (Decimal("0.2001"), Decimal("-0.0001")):
        with pytest.raises(IntegrityError), transaction.atomic():
            Asset.objects.filter(pk="BTC").update(daily_volatility=volatility)
    assert Asset.objects.get(pk="BTC").daily_volatility == Decimal("0.05")


def test_upsert_assets_rejects_float_prices(db):
    # when
    with pytest.raises(InvalidAssetRows) as excinfo:
        upsert_assets([{"asset_id": "BTC", "name": "Bitcoin", "reference_price": 0.1}])

    # then
    assert excinfo.value.errors == ["row 1: reference_price 0.1 must be a decimal number"]
    assert Asset.objects.count() == 0
