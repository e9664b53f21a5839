"""``python manage.py seed_demo``: a few demo users with money, holdings and an order
history, to try the browsable API and the back office.

Everything goes through the services (registration, deposit, place_order, cancel_order),
so the ledgers explain every balance exactly as for real users. Each demo user gets a
generated password, printed once; users that already exist are left alone, so running
the command again adds nothing. Needs assets (``seed_assets``) and market prices (the
simulated provider, the default, works offline).

``demo_trader`` has a week of history to look at (portfolio history, activities, bars): with
the simulated market, the week's prices are recorded as ``process_orders`` would have
recorded them (the simulated price is a function of time), and the user's deposits and
trades are made through the same services at instants spread over the week, with the clock
moved there (``time_machine``, also what the tests use): every row is what the services
would have written then, so ``reconcile_ledger`` holds and the history is the real thing.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal, localcontext

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from assets.models import Asset
from assets.price_history import backfill_simulated_prices
from assets.price_providers import SimulatedProvider
from assets.prices import get_trade_quote, store_quotes
from balances.services import deposit, register_user, withdraw
from core.exceptions import DomainError
from core.money import to_price
from orders.models import Order
from orders.services import cancel_order, place_order
from orders.validation import OrderRequest

DEMO_USERNAMES = ("demo_alice", "demo_bob", "demo_carol")
PREFERRED_ASSETS = ("BTC", "ETH", "SOL")
EXTRA_DEPOSIT = Decimal("25000.00")
# Far below the simulated market, which stays within 9% of its reference price: these
# limit orders rest and are never filled by process_orders.
RESTING_LIMIT_FACTOR = Decimal("0.75")
CANCELLED_LIMIT_FACTOR = Decimal("0.70")
WEEK_USERNAME = "demo_trader"
WEEK = timedelta(days=7)
TRADE_EVERY = timedelta(hours=8)


def quantity_worth(asset: Asset, usd: Decimal, price: Decimal) -> Decimal:
    """The largest quantity on the asset's step worth at most ``usd`` (at least one step)."""
    step = asset.step
    with localcontext() as context:
        context.prec = 60
        quantity = (usd / price).quantize(step, rounding=ROUND_DOWN)
    return max(quantity, step)


class Command(BaseCommand):
    help = "Create demo users with holdings and an order history (skips users that exist)."

    def handle(self, *args, **options):
        assets = self._pick_assets()
        User = get_user_model()
        created = []
        for index, username in enumerate(DEMO_USERNAMES):
            if User.objects.filter(username=username).exists():
                self.stdout.write(f"{username}: exists, skipped.")
                continue
            password = secrets.token_urlsafe(12)
            user, token = register_user(username=username, password=password)
            self.stdout.write(f"{username}: created.")
            self._history(user, assets, scale=Decimal(index + 1))
            created.append((username, password, token.key))
        week = self._week_of_history(assets)
        if week is not None:
            created.append(week)
        if not created:
            self.stdout.write("Nothing to do: every demo user exists.")
            return
        self.stdout.write("")
        self.stdout.write("Demo accounts (the passwords are shown only now):")
        for username, password, token in created:
            self.stdout.write(f"  username {username}  password {password}  API token {token}")
        self.stdout.write(self.style.SUCCESS(f"Created {len(created)} demo user(s)."))

    def _pick_assets(self) -> list[Asset]:
        active = Asset.objects.filter(is_active=True)
        if not active.exists():
            raise CommandError("No active assets: run `python manage.py seed_assets` first.")
        preferred = list(active.filter(asset_id__in=PREFERRED_ASSETS))
        preferred.sort(key=lambda asset: PREFERRED_ASSETS.index(asset.asset_id))
        others = list(active.exclude(asset_id__in=PREFERRED_ASSETS).order_by("asset_id")[:2])
        return (preferred + others)[:2]

    def _history(self, user, assets: list[Asset], *, scale: Decimal) -> None:
        """Market buys, a partial sell, a resting limit BUY and a cancelled one."""
        first, second = assets[0], assets[-1]
        self._step(f"deposit {EXTRA_DEPOSIT} USD", lambda: deposit(user=user, amount=EXTRA_DEPOSIT))

        bought = self._market(user, first, Order.Type.BUY, usd=Decimal("3000") * scale)
        self._market(user, second, Order.Type.BUY, usd=Decimal("1500") * scale)
        if bought is not None:
            half = (bought.quantity / 2).quantize(first.step, rounding=ROUND_DOWN)
            if half > 0 and half * bought.executed_price >= settings.MIN_ORDER_NOTIONAL:
                self._step(
                    f"market SELL {half} {first.asset_id}",
                    lambda: place_order(
                        user=user,
                        request=OrderRequest(asset_id=first.asset_id, order_type=Order.Type.SELL, quantity=half),
                    ),
                )

        self._limit(user, second, usd=Decimal("500"), factor=RESTING_LIMIT_FACTOR)
        to_cancel = self._limit(user, first, usd=Decimal("400"), factor=CANCELLED_LIMIT_FACTOR)
        if to_cancel is not None:
            self._step(f"cancel order {to_cancel.order_id}", lambda: cancel_order(order=to_cancel))

    def _market(self, user, asset: Asset, side: str, *, usd: Decimal) -> Order | None:
        quote = self._step(f"price of {asset.asset_id}", lambda: get_trade_quote(asset))
        if quote is None:
            return None
        quantity = quantity_worth(asset, usd, quote.price)
        placed = self._step(
            f"market {side} {quantity} {asset.asset_id}",
            lambda: place_order(
                user=user, request=OrderRequest(asset_id=asset.asset_id, order_type=side, quantity=quantity)
            ),
        )
        return placed.order if placed is not None else None

    def _limit(self, user, asset: Asset, *, usd: Decimal, factor: Decimal) -> Order | None:
        quote = self._step(f"price of {asset.asset_id}", lambda: get_trade_quote(asset))
        if quote is None:
            return None
        limit = to_price(quote.price * factor)
        quantity = quantity_worth(asset, usd, limit)
        placed = self._step(
            f"limit BUY {quantity} {asset.asset_id} at {limit.normalize():f}",
            lambda: place_order(
                user=user,
                request=OrderRequest(
                    asset_id=asset.asset_id, order_type=Order.Type.BUY, quantity=quantity, order_price=limit
                ),
            ),
        )
        return placed.order if placed is not None else None

    def _week_of_history(self, assets: list[Asset]) -> tuple[str, str, str] | None:
        """``demo_trader``: opened a week ago, a deposit, a market order every 8 hours
        (buys, and a sell of half the holding every third), a withdrawal mid-week."""
        if get_user_model().objects.filter(username=WEEK_USERNAME).exists():
            self.stdout.write(f"{WEEK_USERNAME}: exists, skipped.")
            return None
        if settings.PRICE_PROVIDER != "simulated":
            self.stdout.write(f"{WEEK_USERNAME}: skipped, a week of history needs the simulated market.")
            return None
        # Imported here: a test dependency (requirements.txt has it), needed only for this.
        import time_machine

        now = timezone.now()
        start = now - WEEK
        active = list(Asset.objects.filter(is_active=True))
        self.stdout.write(f"{WEEK_USERNAME}: recording a week of prices of {len(active)} asset(s)...")
        written = backfill_simulated_prices(assets=active, start=start - timedelta(hours=1), end=now)
        self.stdout.write(f"    {written} price records")
        traded = assets + [a for a in active if a.asset_id not in {x.asset_id for x in assets}][:1]

        def at(when):
            # The quote of that instant, as if just fetched, so the order sees that price.
            travel = time_machine.travel(when, tick=False)
            travel.start()
            store_quotes(SimulatedProvider().fetch(traded).values())
            return travel

        password = secrets.token_urlsafe(12)
        travel = at(start)
        try:
            user, token = register_user(username=WEEK_USERNAME, password=password)
        finally:
            travel.stop()
        self.stdout.write(f"{WEEK_USERNAME}: created {WEEK.days} days ago.")
        when, step = start + timedelta(hours=1), 0
        while when < now - timedelta(hours=1):
            travel = at(when)
            try:
                self._week_step(user, traded, step)
            finally:
                travel.stop()
            when, step = when + TRADE_EVERY, step + 1
        return WEEK_USERNAME, password, token.key

    def _week_step(self, user, assets: list[Asset], step: int) -> None:
        if step == 0:
            self._step(f"deposit {EXTRA_DEPOSIT} USD", lambda: deposit(user=user, amount=EXTRA_DEPOSIT))
            return
        if step == 10:
            self._step("withdraw 1000.00 USD", lambda: withdraw(user=user, amount=Decimal("1000.00")))
            return
        asset = assets[step % len(assets)]
        if step % 3 == 0:
            holding = user.asset_balances.filter(asset=asset).values_list("quantity", flat=True).first()
            half = ((holding or Decimal(0)) / 2).quantize(asset.step, rounding=ROUND_DOWN)
            if half > 0:
                self._step(
                    f"market SELL {half} {asset.asset_id}",
                    lambda: place_order(
                        user=user,
                        request=OrderRequest(asset_id=asset.asset_id, order_type=Order.Type.SELL, quantity=half),
                    ),
                )
                return
        self._market(user, asset, Order.Type.BUY, usd=Decimal("600") + Decimal(40 * (step % 5)))

    def _step(self, what: str, action):
        """Run one service call; a refusal (e.g. no fresh price) is reported and skipped."""
        try:
            result = action()
        except DomainError as error:
            self.stderr.write(f"    {what}: skipped ({error.message})")
            return None
        self.stdout.write(f"    {what}: ok")
        return result
