"""An account's fill model: GET/PATCH /api/v1/account/fill-model/, the deployment's default
from settings, and the rules of orders/fill_model.py (docs/DESIGN.md, "Fill model")."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from rest_framework.test import APIClient

from accounts.services import create_api_key
from orders.fill_model import PROFILES, REALISTIC, FillParams, deployment_default
from orders.models import AccountFillModel
from tests.support.api import error_code

URL = "/api/v1/account/fill-model/"


def test_an_account_without_its_own_model_shows_the_deployments_ideal_one(auth_client):
    # when
    body = auth_client.get(URL).json()

    # then
    assert body == {
        "profile": "ideal",
        "spread_bps": "0",
        "slippage": "none",
        "volume_limit": "0.025",
        "price_impact": "0.1",
        "fill_participation": None,
        "maker_fee_bps": "0",
        "taker_fee_bps": "0",
        "seed": 0,
        "is_default": True,
        "updated_at": None,
        "by_back_office": False,
    }


def test_patching_the_realistic_profile_then_one_parameter_makes_it_custom(auth_client, user):
    # when
    realistic = auth_client.patch(URL, {"profile": "realistic"}, format="json")
    custom = auth_client.patch(URL, {"spread_bps": "5", "seed": 42}, format="json")

    # then
    assert realistic.status_code == 200, realistic.content
    assert realistic.json()["profile"] == "realistic"
    assert realistic.json()["taker_fee_bps"] == "25"
    assert realistic.json()["maker_fee_bps"] == "15"
    assert realistic.json()["fill_participation"] == "0.1"
    assert realistic.json()["is_default"] is False
    body = custom.json()
    assert (body["profile"], body["spread_bps"], body["seed"], body["taker_fee_bps"]) == ("custom", "5", 42, "25")
    assert auth_client.get(URL).json() == body
    row = AccountFillModel.objects.get(user=user)
    assert (row.profile, row.spread_bps, row.seed, row.actor_id) == ("custom", D("5"), 42, None)


def test_setting_every_parameter_back_to_ideal_values_is_the_ideal_profile(auth_client):
    # given
    auth_client.patch(URL, {"profile": "realistic"}, format="json")

    # when
    body = auth_client.patch(
        URL,
        {
            "spread_bps": "0",
            "slippage": "none",
            "fill_participation": None,
            "maker_fee_bps": "0",
            "taker_fee_bps": "0",
            "volume_limit": "0.025",
            "price_impact": "0.1",
        },
        format="json",
    ).json()

    # then
    assert body["profile"] == "ideal"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"profile": "custom"}, "profile"),
        ({"spread_bps": "-1"}, "spread_bps"),
        ({"spread_bps": "1000.01"}, "spread_bps"),
        ({"spread_bps": "1e2"}, "spread_bps"),
        ({"slippage": "random"}, "slippage"),
        ({"volume_limit": "0"}, "volume_limit"),
        ({"fill_participation": "1.5"}, "fill_participation"),
        ({"taker_fee_bps": "abc"}, "taker_fee_bps"),
        ({"seed": -1}, "seed"),
        ({"seed": "1.0"}, "seed"),
        ({"colour": "blue"}, "colour"),
        ({}, "profile"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_changes_nothing(auth_client, user, body, field):
    # when
    response = auth_client.patch(URL, body, format="json")

    # then
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["details"]
    assert not AccountFillModel.objects.filter(user=user).exists()


def test_an_api_key_reads_the_model_but_cannot_change_it(user):
    # given
    key = create_api_key(user=user, name="bot")
    client = APIClient(HTTP_APCA_API_KEY_ID=key.api_key.key_id, HTTP_APCA_API_SECRET_KEY=key.secret_key)

    # when
    read = client.get(URL)
    write = client.patch(URL, {"profile": "realistic"}, format="json")

    # then
    assert read.status_code == 200
    assert write.status_code == 403
    assert error_code(write) == "permission_denied"
    assert not AccountFillModel.objects.filter(user=user).exists()


def test_each_account_has_its_own_model(auth_client, other_user):
    # given
    auth_client.patch(URL, {"profile": "realistic"}, format="json")
    other = APIClient()
    other.force_authenticate(other_user)

    # then
    assert other.get(URL).json()["profile"] == "ideal"


def test_the_endpoint_needs_authentication(api_client):
    assert api_client.get(URL).status_code == 401


def test_the_deployment_default_follows_the_settings(settings):
    # given
    settings.FILL_SPREAD_BPS = D("7")

    # then
    assert deployment_default() == FillParams(spread_bps=D("7"))
    assert deployment_default().profile == "custom"


def test_the_realistic_settings_defaults_are_the_realistic_profile(monkeypatch):
    # given: the settings module read again with FILL_MODEL=realistic
    import importlib

    import portfolio_project.settings as module

    monkeypatch.setenv("FILL_MODEL", "realistic")
    fresh = importlib.reload(module)
    try:
        read = FillParams(
            spread_bps=fresh.FILL_SPREAD_BPS,
            slippage=fresh.FILL_SLIPPAGE,
            volume_limit=fresh.FILL_VOLUME_LIMIT,
            price_impact=fresh.FILL_PRICE_IMPACT,
            fill_participation=fresh.FILL_PARTICIPATION,
            maker_fee_bps=fresh.FILL_MAKER_FEE_BPS,
            taker_fee_bps=fresh.FILL_TAKER_FEE_BPS,
            seed=fresh.FILL_SEED,
        )
    finally:
        monkeypatch.delenv("FILL_MODEL")
        importlib.reload(module)

    # then
    assert read == PROFILES[REALISTIC]


def test_bid_and_ask_straddle_the_mid_by_half_the_spread_each():
    params = FillParams(spread_bps=D("10"))
    assert params.bid_ask(D("50000")) == (D("49975"), D("50025"))
    assert FillParams().bid_ask(D("50000")) == (D("50000"), D("50000"))


def test_volume_share_slippage_is_leans():
    # given: LEAN's defaults, 0.1 of a minute's volume of 10 (capped at 0.025)
    params = FillParams(slippage="volume_share")

    # then: 0.025^2 x 0.1; and 0.01^2 x 0.1 below the cap
    assert params.slip(quantity=D("1"), volume=D("10")) == D("0.0000625")
    assert params.slip(quantity=D("0.1"), volume=D("10")) == D("0.00001")
    assert params.market_price(side="BUY", mid=D("50000"), quantity=D("0.1"), volume=D("10")) == D("50000.5")
    assert params.market_price(side="SELL", mid=D("50000"), quantity=D("0.1"), volume=D("10")) == D("49999.5")


def test_fees_are_rounded_up_in_the_asset_received():
    params = PROFILES[REALISTIC]
    assert params.buy_fee(quantity=D("0.001"), step=D("0.00000001"), maker=False) == D("0.0000025")
    # rounded up to a step, but a fill keeps at least one step: one step pays nothing, two pay one
    assert params.buy_fee(quantity=D("0.00000001"), step=D("0.00000001"), maker=True) == D("0")
    assert params.buy_fee(quantity=D("0.00000002"), step=D("0.00000001"), maker=True) == D("0.00000001")
    assert params.sell_fee(proceeds=D("50.00"), maker=False) == D("0.13")
    assert params.sell_fee(proceeds=D("50.00"), maker=True) == D("0.08")
