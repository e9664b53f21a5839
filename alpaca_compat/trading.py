"""Alpaca's trading API (``/v2/``) over our services: orders, positions, account, assets,
clock and activities. Each view parses Alpaca's input, translates it to one service or
selector call, and renders Alpaca's shape; the rules live in the services."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import Q
from rest_framework import serializers, status
from rest_framework.response import Response

from alpaca_compat import errors, render
from alpaca_compat.auth import api_key_of
from alpaca_compat.symbols import asset_id_for, pair_hint, pair_symbol, position_symbol
from alpaca_compat.views import ActivityPageToken, AlpacaView, Day, Timestamp, comma_list, resolve_asset
from assets.selectors import Timeframe, get_assets
from balances.history import Activity, ActivityType, Period, get_activities, get_portfolio_history
from balances.selectors import calculate_portfolio_value, get_holdings, value_holdings
from core.api.fields import PriceField, QuantityField, StrictDecimalField, StrictIntegerField
from core.api.replicas import ReplicaReadMixin
from core.api.serializers import ShallowFieldsSerializer
from core.money import QUANTITY, Precision
from orders import selectors as order_selectors
from orders import services as order_services
from orders.models import Order
from orders.validation import OrderChanges, OrderOrigin, OrderRequest


def _unknown_asset(symbol: str) -> errors.AlpacaError:
    message = f'asset "{symbol}" not found{pair_hint(symbol)}'
    return errors.AlpacaError(status.HTTP_422_UNPROCESSABLE_ENTITY, errors.INVALID_VALUE, message)


# --- Orders ---------------------------------------------------------------------------


# Numbers as /api/v1 reads them (core.api.fields): ASCII digits, one point and sign, at most the
# column's digits; alpaca-py sends floats as JSON numbers (alpaca_compat.views.AlpacaJSONParser).
def _price(**kwargs):
    return PriceField(required=False, allow_null=True, **kwargs)


def _quantity(**kwargs):
    return QuantityField(required=False, allow_null=True, **kwargs)


class SubmitOrder(ShallowFieldsSerializer):
    """alpaca-py's OrderRequest fields (alpaca/trading/requests.py)."""

    symbol = serializers.CharField(max_length=64)
    qty = _quantity()
    notional = StrictDecimalField(QUANTITY, trim=True, required=False, allow_null=True)
    side = serializers.ChoiceField(["buy", "sell"], required=False, allow_null=True)
    type = serializers.ChoiceField(["market", "limit", "stop", "stop_limit", "trailing_stop"])
    time_in_force = serializers.ChoiceField(["day", "gtc", "opg", "cls", "ioc", "fok"])
    limit_price = _price()
    stop_price = _price()
    trail_price = _price()
    trail_percent = _price()
    extended_hours = serializers.BooleanField(required=False, allow_null=True)
    client_order_id = serializers.CharField(required=False, allow_null=True, max_length=128)
    order_class = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    take_profit = serializers.DictField(required=False, allow_null=True)
    stop_loss = serializers.DictField(required=False, allow_null=True)
    legs = serializers.ListField(required=False, allow_null=True)
    position_intent = serializers.ChoiceField(
        ["buy_to_open", "buy_to_close", "sell_to_open", "sell_to_close"], required=False, allow_null=True
    )
    subtag = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    source = serializers.CharField(required=False, allow_null=True, allow_blank=True)


def _refuse_unsupported(data: dict) -> None:
    """What Alpaca offers and this service does not is refused (422), never turned into a
    different order."""
    order_class = data.get("order_class") or "simple"
    if order_class != "simple" or data.get("take_profit") or data.get("stop_loss") or data.get("legs"):
        raise errors.unsupported(f"order_class {order_class} is not supported: only simple crypto orders are")
    if data["type"] == "trailing_stop" or data.get("trail_price") is not None or data.get("trail_percent") is not None:
        raise errors.unsupported("trailing stop orders are not supported")
    if data.get("extended_hours"):
        raise errors.unsupported("extended hours orders are not supported for crypto")
    if data.get("position_intent") in ("sell_to_open", "buy_to_close"):
        raise errors.unsupported("short selling is not supported")
    if data["time_in_force"] not in Order.TimeInForce.values:
        raise errors.invalid("invalid crypto time_in_force")


# Which of Alpaca's price fields each order type takes (the engine's kinds).
_PRICES = {
    "market": (False, False),
    "limit": (True, False),
    "stop": (False, True),
    "stop_limit": (True, True),
}


def _order_request(data: dict) -> OrderRequest:
    """The engine's request for an Alpaca order request."""
    _refuse_unsupported(data)
    if data.get("side") is None:
        raise errors.invalid("side is required")
    qty, notional = data.get("qty"), data.get("notional")
    if qty is None and notional is None:
        raise errors.invalid("qty or notional is required")
    if qty is not None and notional is not None:
        raise errors.invalid("only one of qty or notional may be given")
    kind = data["type"]
    takes_limit, takes_stop = _PRICES[kind]
    for field, wanted in (("limit_price", takes_limit), ("stop_price", takes_stop)):
        given = data.get(field) is not None
        if wanted and not given:
            raise errors.invalid(f"{field} is required for {kind} orders")
        if given and not wanted:
            raise errors.invalid(f"{kind} orders take no {field}")
    client_order_id = data.get("client_order_id") or None
    if client_order_id is not None and len(client_order_id) > 64:
        raise errors.invalid("client_order_id must be at most 64 characters")
    asset = resolve_asset(data["symbol"], missing=_unknown_asset)
    return OrderRequest(
        asset_id=asset.asset_id,
        order_type=Order.Type.BUY if data["side"] == "buy" else Order.Type.SELL,
        quantity=qty,
        notional=notional,
        order_price=data.get("limit_price"),
        stop_price=data.get("stop_price"),
        time_in_force=data["time_in_force"],
        client_order_id=client_order_id,
    )


def _origin(request) -> OrderOrigin:
    """Orders placed through /v2 say so, with the key the program used."""
    return OrderOrigin(placed_via=Order.PlacedVia.ALPACA, api_key=api_key_of(request))


class ListOrders(ShallowFieldsSerializer):
    status = serializers.ChoiceField(["open", "closed", "all"], required=False, default="open")
    limit = StrictIntegerField(min_value=1, max_value=500, required=False, default=50)
    after = Timestamp(required=False)
    until = Timestamp(required=False)
    direction = serializers.ChoiceField(["asc", "desc"], required=False, default="desc")
    symbols = serializers.CharField(required=False)
    side = serializers.ChoiceField(["buy", "sell"], required=False)
    nested = serializers.BooleanField(required=False)


def _order_filters(params: dict) -> dict[str, str]:
    """Alpaca's list query as the engine's order filter (orders.filters.OrderFilter)."""
    filters = {"direction": params["direction"]}
    if params["status"] != "all":
        filters["status"] = params["status"]  # open, closed: the same words
    if "after" in params:
        filters["after"] = params["after"].isoformat()
    if "until" in params:
        filters["before"] = params["until"].isoformat()  # Alpaca's until is exclusive
    if "symbols" in params:
        # A symbol that names no asset stays as written: it matches no order.
        filters["asset_id"] = ",".join(asset_id_for(symbol) or symbol for symbol in comma_list(params["symbols"]))
    if "side" in params:
        filters["order_type"] = params["side"].upper()
    return filters


class OrdersView(ReplicaReadMixin, AlpacaView):  # the list (GET) may come from a replica
    order_placing_methods = ("POST", "DELETE")  # place, cancel all

    def post(self, request):
        order_request = _order_request(self.parse(SubmitOrder, request.data))
        self.asset_id = order_request.asset_id  # names the currency in insufficient-balance messages
        placed = order_services.place_order(user=request.user, request=order_request, origin=_origin(request))
        return Response(render.order_json(placed.order, just_placed=placed.created))

    def get(self, request):
        params = self.query(ListOrders)
        orders = order_selectors.get_orders(user=request.user, filters=_order_filters(params))[: params["limit"]]
        return Response([render.order_json(order) for order in orders])

    def delete(self, request):
        """Cancel every open order: 207 with one answer per order, as Alpaca."""
        cancelled = order_services.cancel_all_orders(user=request.user)
        results = [{"id": str(order.order_id), "status": 200, "body": render.order_json(order)} for order in cancelled]
        return Response(results, status=status.HTTP_207_MULTI_STATUS)


class ReplaceOrder(ShallowFieldsSerializer):
    """alpaca-py's ReplaceOrderRequest fields."""

    qty = _quantity()
    time_in_force = serializers.ChoiceField(["day", "gtc", "opg", "cls", "ioc", "fok"], required=False, allow_null=True)
    limit_price = _price()
    stop_price = _price()
    trail = _price()
    client_order_id = serializers.CharField(required=False, allow_null=True, max_length=64)


class OrderView(AlpacaView):
    order_placing_methods = ("PATCH", "DELETE")  # replace (places the new order), cancel

    def order(self, order_id: str) -> Order:
        order = order_selectors.get_order_for_user(user=self.request.user, order_id=order_id)
        if order is None or order.user_id != self.request.user.pk:
            raise errors.not_found("order not found")
        return order

    def get(self, request, order_id):
        return Response(render.order_json(self.order(order_id)))

    def patch(self, request, order_id):
        order = self.order(order_id)
        params = self.parse(ReplaceOrder, request.data)
        if params.get("trail") is not None:
            raise errors.unsupported("trailing stop orders are not supported")
        if params.get("time_in_force") is not None and params["time_in_force"] not in Order.TimeInForce.values:
            raise errors.invalid("invalid crypto time_in_force")
        changes = OrderChanges(
            quantity=params.get("qty"),
            order_price=params.get("limit_price"),
            stop_price=params.get("stop_price"),
            time_in_force=params.get("time_in_force"),
            client_order_id=params.get("client_order_id") or None,
        )
        new = order_services.replace_order(order=order, changes=changes, origin=_origin(request))
        return Response(render.order_json(new))

    def delete(self, request, order_id):
        order_services.cancel_order(order=self.order(order_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ByClientOrderId(ShallowFieldsSerializer):
    client_order_id = serializers.CharField(max_length=128)
    nested = serializers.BooleanField(required=False)


class OrderByClientIdView(AlpacaView):
    def get(self, request):
        client_order_id = self.query(ByClientOrderId)["client_order_id"]
        # An order placed without a client_order_id answers to its own id (render.order_json).
        match = Q(client_order_id=client_order_id)
        if _is_uuid(client_order_id):
            match |= Q(client_order_id__isnull=True, order_id=client_order_id)
        order = order_selectors.get_orders_by_user(user=request.user).filter(match).first()
        if order is None:
            raise errors.not_found("order not found")
        return Response(render.order_json(order))


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


# --- Positions ------------------------------------------------------------------------


def _position_missing(symbol: str) -> errors.AlpacaError:
    return errors.not_found("position does not exist")


class ClosePosition(ShallowFieldsSerializer):
    qty = QuantityField(required=False)
    percentage = StrictDecimalField(Precision(max_digits=9, decimals=6), trim=True, required=False)


class PositionsView(AlpacaView):
    order_placing_methods = ("DELETE",)  # closing positions sells them at market

    def get(self, request):
        return Response([render.position_json(value) for value in value_holdings(get_holdings(user=request.user))])

    def delete(self, request):
        """Close every position, with ``cancel_orders=true`` after cancelling open orders (what a
        resting SELL holds cannot be sold otherwise): 207, one answer per position."""
        cancel_orders = request.query_params.get("cancel_orders", "").lower() == "true"
        _, closed = order_services.close_all_positions(
            user=request.user, cancel_orders=cancel_orders, origin=_origin(request)
        )
        results = []
        for result in closed:
            symbol = position_symbol(result.asset_id)
            if result.error is None:
                order = result.order
                results.append(
                    {"symbol": symbol, "order_id": str(order.order_id), "status": 200, "body": render.order_json(order)}
                )
            else:
                http_status, body = errors.domain_answer(result.error, asset_id=result.asset_id)
                results.append({"symbol": symbol, "status": http_status, "body": body})
        return Response(results, status=status.HTTP_207_MULTI_STATUS)


class PositionView(AlpacaView):
    order_placing_methods = ("DELETE",)

    def holding(self, symbol: str):
        asset = resolve_asset(symbol, missing=_position_missing)
        self.asset_id = asset.asset_id  # names the currency in insufficient-balance messages
        holdings = get_holdings(user=self.request.user, asset_id=asset.asset_id)
        if not holdings:
            raise _position_missing(symbol)
        return holdings[0]

    def get(self, request, symbol):
        return Response(render.position_json(value_holdings([self.holding(symbol)])[0]))

    def delete(self, request, symbol):
        holding = self.holding(symbol)
        params = self.query(ClosePosition)
        placed = order_services.close_position(
            user=request.user,
            asset_id=holding.asset_id,
            quantity=params.get("qty"),
            percentage=params.get("percentage"),
            origin=_origin(request),
        )
        return Response(render.order_json(placed.order, just_placed=True))


# --- Account, assets, clock -----------------------------------------------------------


class AccountView(AlpacaView):
    def get(self, request):
        return Response(render.account_json(request.user, calculate_portfolio_value(user=request.user)))


class ListAssets(ShallowFieldsSerializer):
    status = serializers.ChoiceField(["active", "inactive"], required=False)
    asset_class = serializers.CharField(required=False)
    exchange = serializers.CharField(required=False)
    attributes = serializers.CharField(required=False, allow_blank=True)


class AssetsView(AlpacaView):
    def get(self, request):
        params = self.query(ListAssets)
        if params.get("asset_class", render.CRYPTO) != render.CRYPTO:
            return Response([])
        if params.get("exchange", render.EXCHANGE) != render.EXCHANGE:
            return Response([])
        is_active = params["status"] == "active" if "status" in params else None
        return Response([render.asset_json(asset) for asset in get_assets(is_active=is_active)])


def _no_such_asset(symbol: str) -> errors.AlpacaError:
    return errors.not_found(f"asset not found for {symbol}{pair_hint(symbol)}")


class AssetView(AlpacaView):
    def get(self, request, symbol):
        asset = resolve_asset(symbol, missing=_no_such_asset)
        return Response(render.asset_json(asset))


class ClockView(AlpacaView):
    """Crypto trades around the clock: always open. The next "close" and "open" are the daily
    bar's turn at midnight UTC, the same instant, so a program that waits for the open never waits."""

    def get(self, request):
        now = datetime.now(UTC)
        midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        return Response(
            {
                "timestamp": render.iso(now),
                "is_open": True,
                "next_open": render.iso(midnight),
                "next_close": render.iso(midnight),
            }
        )


# --- Activities and portfolio history --------------------------------------------------

# Alpaca's activity types over the feed of both ledgers (balances.history). An account reset
# is journal entries (JNLC: cash, JNLS: securities): book entries that move cash or positions
# outside trading, which is what a reset does. Not CSD/CSW: a program summing deposits and
# withdrawals (its net contributions, its P&L) would count a reset's cash as money moved in
# or out; not FILL: nothing was sold, there is no price and no P&L.
ACTIVITY_TYPES = {
    "FILL": ActivityType.FILL,
    "CSD": ActivityType.DEPOSIT,
    "CSW": ActivityType.WITHDRAWAL,
    "JNLC": ActivityType.RESET,
    "JNLS": ActivityType.RESET,
    # A fill's fee (docs/DESIGN.md, "Fill model"): Alpaca's crypto fee, in the asset a BUY
    # received (qty negative, no cash) or in the USD a SELL did (net_amount negative).
    "CFEE": ActivityType.FEE,
}
RESET_LEDGERS = {"JNLC": "C", "JNLS": "A"}  # the cash row; the rows of the holdings taken out


class ListActivities(ShallowFieldsSerializer):
    activity_types = serializers.CharField(required=False)
    activity_type = serializers.CharField(required=False)
    category = serializers.ChoiceField(["trade_activity", "non_trade_activity"], required=False)
    date = Day(required=False)
    after = Timestamp(required=False)
    until = Timestamp(required=False)
    direction = serializers.ChoiceField(["asc", "desc"], required=False, default="desc")
    page_size = StrictIntegerField(min_value=1, max_value=100, required=False, default=100)
    page_token = ActivityPageToken(required=False)


def activity_json(user, activity: Activity) -> dict:
    base = {
        "id": activity.activity_id,  # Alpaca's "<time>::<id>" form; also the next page's page_token
        "account_id": str(render.account_id(user)),
        "activity_type": alpaca_activity_type(activity),
    }
    if activity.activity_type == ActivityType.RESET and activity.asset_id is not None:
        return {
            **base,
            "date": activity.created_at.astimezone(UTC).date().isoformat(),
            "net_amount": "0",
            "description": activity.note,
            "status": "executed",
            "symbol": pair_symbol(activity.asset_id),
            "qty": render.plain(activity.quantity),
        }
    if activity.activity_type == ActivityType.FEE:
        fee = {
            **base,
            "date": activity.created_at.astimezone(UTC).date().isoformat(),
            "net_amount": render.usd(activity.net_amount) if activity.net_amount is not None else "0",
            "description": f"Crypto fee of order {activity.order_id}",
            "status": "executed",
        }
        if activity.asset_id is not None:
            fee.update(
                symbol=pair_symbol(activity.asset_id),
                qty=render.plain(activity.quantity),
                price=render.plain(activity.price),
            )
        return fee
    if activity.activity_type == ActivityType.FILL:
        qty = render.plain(activity.quantity)
        return {
            **base,
            "transaction_time": render.iso(activity.created_at),
            "type": "fill",
            "price": render.plain(activity.price),
            "qty": qty,
            "side": activity.side.lower(),
            "symbol": pair_symbol(activity.asset_id),
            "leaves_qty": "0",
            "order_id": activity.order_id,
            "cum_qty": qty,
            "order_status": "filled",
        }
    return {
        **base,
        "date": activity.created_at.astimezone(UTC).date().isoformat(),
        "net_amount": render.usd(activity.net_amount),
        "description": activity.note,
        "status": "executed",
    }


def alpaca_activity_type(activity: Activity) -> str:
    if activity.activity_type == ActivityType.RESET:
        return "JNLS" if activity.asset_id is not None else "JNLC"
    return {
        ActivityType.FILL: "FILL",
        ActivityType.DEPOSIT: "CSD",
        ActivityType.WITHDRAWAL: "CSW",
        ActivityType.FEE: "CFEE",
    }[activity.activity_type]


class ActivitiesView(ReplicaReadMixin, AlpacaView):
    """FILL, CSD, CSW, CFEE (a fill's fee), and a reset's JNLC and JNLS activities; other
    Alpaca types (dividends, ...) never happen here."""

    def get(self, request, activity_type: str | None = None):
        params = self.query(ListActivities)
        names = [activity_type] if activity_type else comma_list(params.get("activity_types") or "")
        names = [name.upper() for name in names] or list(ACTIVITY_TYPES)
        if params.get("category") == "trade_activity":
            names = [name for name in names if name == "FILL"]
        elif params.get("category") == "non_trade_activity":
            names = [name for name in names if name != "FILL"]
        kinds = list(dict.fromkeys(ACTIVITY_TYPES[name] for name in names if name in ACTIVITY_TYPES))
        if not kinds:
            return Response([])
        reset_ledgers = "".join(RESET_LEDGERS[name] for name in names if name in RESET_LEDGERS)
        after, until = params.get("after"), params.get("until")
        if "date" in params:
            day = datetime.combine(params["date"], datetime.min.time(), tzinfo=UTC)
            after, until = day - timedelta(microseconds=1), day + timedelta(days=1)
        activities = get_activities(
            user=request.user,
            activity_types=kinds,
            after=after,
            until=until,
            page_token=params.get("page_token"),
            page_size=params["page_size"],
            newest_first=params["direction"] == "desc",
            reset_ledgers=reset_ledgers,
        )
        return Response([activity_json(request.user, activity) for activity in activities])


PERIODS = {period.value: period for period in Period}
HISTORY_TIMEFRAMES = {timeframe.value: timeframe for timeframe in Timeframe}


class PortfolioHistoryQuery(ShallowFieldsSerializer):
    period = serializers.ChoiceField(list(PERIODS), required=False, default="1M")
    timeframe = serializers.ChoiceField(list(HISTORY_TIMEFRAMES), required=False)
    date_end = Day(required=False)
    end = Timestamp(required=False)
    extended_hours = serializers.BooleanField(required=False)  # crypto has no extended hours: no effect
    intraday_reporting = serializers.ChoiceField(["market_hours", "extended_hours", "continuous"], required=False)
    pnl_reset = serializers.ChoiceField(["per_day", "no_reset"], required=False)
    cashflow_types = serializers.CharField(required=False)


def _number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


class PortfolioHistoryView(ReplicaReadMixin, AlpacaView):
    """The portfolio history in Alpaca's shape: unix timestamps, numbers, ``profit_loss_pct`` as a
    fraction (0.0123 is 1.23%)."""

    def get(self, request):
        params = self.query(PortfolioHistoryQuery)
        end = params.get("end")
        if "date_end" in params:
            end = datetime.combine(params["date_end"] + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        timeframe = HISTORY_TIMEFRAMES[params["timeframe"]] if "timeframe" in params else None
        history = get_portfolio_history(
            user=request.user, period=PERIODS[params["period"]], timeframe=timeframe, end=end
        )
        return Response(
            {
                "timestamp": [int(moment.timestamp()) for moment in history.timestamp],
                "equity": [_number(value) for value in history.equity],
                "profit_loss": [_number(value) for value in history.profit_loss],
                "profit_loss_pct": [None if pct is None else float(pct / 100) for pct in history.profit_loss_pct],
                "base_value": _number(history.base_value),
                "timeframe": history.timeframe.value,
                "cashflow": {},
            }
        )
