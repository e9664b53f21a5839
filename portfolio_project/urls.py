from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from accounts.api import ApiKeyViewSet, ChangePasswordView, LogoutView
from alpaca_compat import urls as alpaca_urls
from alpaca_compat.streams import routing as alpaca_streams
from assets.api import AssetViewSet
from assets.market_api import MarketBarsView, MarketLatestView
from balances.api import (
    AssetBalanceViewSet,
    AssetTransactionViewSet,
    BalanceView,
    CashTransactionViewSet,
    DepositView,
    PortfolioView,
    RegisterView,
    TokenView,
    WithdrawView,
)
from balances.history_api import ActivitiesView, PortfolioHistoryView
from core.api.root import ApiRootView
from core.logins import ThrottledAdminAuthenticationForm, ThrottledAuthenticationForm, answer_throttled_login_with_429
from orders.account_api import AccountResetView, FillModelView
from orders.api import CloseAllPositionsView, ClosePositionView, OrderViewSet
from portfolio_project.health import HealthView

router = DefaultRouter()
router.include_root_view = False  # core.api.root.ApiRootView links everything instead
router.register("assets", AssetViewSet, basename="asset")
router.register("cash-transactions", CashTransactionViewSet, basename="cash-transaction")
router.register("transactions", AssetTransactionViewSet, basename="asset-transaction")
router.register("asset-balances", AssetBalanceViewSet, basename="asset-balance")
router.register("orders", OrderViewSet, basename="order")
router.register("api-keys", ApiKeyViewSet, basename="api-key")

api_v1 = [
    path("auth/register/", RegisterView.as_view(), name="register"),
    path("auth/token/", TokenView.as_view(), name="token"),
    path("auth/logout/", LogoutView.as_view(), name="logout"),
    path("auth/password/", ChangePasswordView.as_view(), name="change-password"),
    path("balance/", BalanceView.as_view(), name="balance"),
    path("balance/deposit/", DepositView.as_view(), name="deposit"),
    path("balance/withdraw/", WithdrawView.as_view(), name="withdraw"),
    path("portfolio/", PortfolioView.as_view(), name="portfolio"),
    path("account/reset/", AccountResetView.as_view(), name="account-reset"),
    path("account/fill-model/", FillModelView.as_view(), name="account-fill-model"),
    # Before the router's asset-balances/{asset_id}/, which would take "close-all" for an asset.
    path("asset-balances/close-all/", CloseAllPositionsView.as_view(), name="close-all-positions"),
    path("asset-balances/<str:asset_id>/close/", ClosePositionView.as_view(), name="close-position"),
    # The router's lists and details (orders among them) after those two and before the rest:
    # none of the paths below overlaps its prefixes, and an order is matched sooner.
    path("", include(router.urls)),
    # History and market data (README, "The API in short")
    path("portfolio/history/", PortfolioHistoryView.as_view(), name="portfolio-history"),
    path("activities/", ActivitiesView.as_view(), name="activities"),
    path("market/latest/", MarketLatestView.as_view(), name="market-latest"),
    path("market/bars/", MarketBarsView.as_view(), name="market-bars"),
    path("health/", HealthView.as_view(), name="health"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]
# The root links every endpoint above without an identifier, whoever adds it.
api_v1.append(path("", ApiRootView.as_view(patterns=api_v1), name="api-root"))

# The login forms are throttled like auth/token/ (core/logins.py): the browsable API's login
# replaces rest_framework.urls' (same names), the admin's takes the form through its hook.
admin.site.login_form = ThrottledAdminAuthenticationForm
browsable_api_auth = [
    path(
        "login/",
        answer_throttled_login_with_429(
            auth_views.LoginView.as_view(
                template_name="rest_framework/login.html", authentication_form=ThrottledAuthenticationForm
            )
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]

urlpatterns = [
    # The API first: Django tries the patterns in order on every request, and no prefix below
    # overlaps another, so the order decides only how many are tried before the match.
    path("api/v1/", include(api_v1)),
    # Alpaca's paper-trading API (docs/DESIGN.md, "Alpaca compatibility").
    path("v2/", include(alpaca_urls.trading_urls)),
    path("v1beta3/crypto/us/", include(alpaca_urls.market_data_urls)),
    path("", RedirectView.as_view(url="/api/v1/", permanent=False)),
    path("api-auth/", include((browsable_api_auth, "rest_framework"))),
    path("admin/login/", answer_throttled_login_with_429(admin.site.login)),
    path("admin/", admin.site.urls),
]

# WebSocket routes (the streams), served by portfolio_project/asgi.py on the API's port.
websocket_urlpatterns = alpaca_streams.websocket_urls

# Alpaca's shape under /v2/ and /v1beta3/, the API's error shape under /api/ (core.api.errors,
# which these delegate to), Django's pages elsewhere.
handler400 = "alpaca_compat.errors.handler400"
handler404 = "alpaca_compat.errors.handler404"
handler500 = "alpaca_compat.errors.handler500"
