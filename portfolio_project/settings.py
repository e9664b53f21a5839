"""Settings for the portfolio service: every deployment difference comes from the environment.

The README's Configuration table lists the variables. Defaults are safe for development: ``DEBUG`` is off
unless asked for, the database is an embedded PostgreSQL when ``DATABASE_URL`` is unset,
and prices come from the simulated market so nothing needs the network.
"""

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
# The fallback key is for development only; `check --deploy` flags it, and production sets one.
SECRET_KEY = env("SECRET_KEY", default="django-insecure-dev-only-key-change-me-in-production-0123456789")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # Before django.contrib.auth so that our `createsuperuser` (atomic, opens the USD
    # balance in the user's own transaction) wins the command lookup.
    "balances",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "assets",
    "orders",
    "alpaca_compat",
    # Admin pages that see several apps (the user page with its money): above them all.
    "backoffice",
    "accounts",
]

MIDDLEWARE = [
    "core.api.middleware.ReleaseViewMiddleware",
    "core.api.middleware.RejectNulBytesMiddleware",
    "core.api.middleware.RateLimitHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Django's session, user and message middleware, skipped for an API request that brings a
    # token or an API key (core/api/middleware.py): only browsers' requests read them.
    "core.api.middleware.SessionMiddleware",
    "core.api.middleware.CommonMiddleware",  # Django's, without empty 301s for API writes
    "django.middleware.csrf.CsrfViewMiddleware",
    "core.api.middleware.AuthenticationMiddleware",
    "core.api.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so that it sees the views' exceptions first: a database outage is a 503.
    "core.api.middleware.DatabaseUnavailableMiddleware",
]

# Request headers (as in request.META) that DRF's authentication classes answer alone, with
# the user or a 401, never falling back to the session: the token's (accounts/authentication.py)
# and the API key's id (alpaca_compat/authentication.py). An API request with one of them skips
# the session, user and message middleware.
API_CREDENTIAL_HEADERS = ["HTTP_AUTHORIZATION", "HTTP_APCA_API_KEY_ID"]

ROOT_URLCONF = "portfolio_project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "portfolio_project.wsgi.application"
ASGI_APPLICATION = "portfolio_project.asgi.application"
# Threads per server process that run requests' sync code (middleware, views), each with its own
# persistent database connection; more requests wait as coroutines (portfolio_project/asgi.py).
WEB_THREADS = env.int("WEB_THREADS", default=2)

# --- Database: PostgreSQL only (docs/EMBEDDED_POSTGRES.md) ---
if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db("DATABASE_URL")}
else:
    from portfolio_project.embedded_db import database_settings

    DATABASES = {"default": database_settings(BASE_DIR)}
# Django's backend with the health check below skipped on a connection in use (core/postgresql).
DATABASE_ENGINE = "core.postgresql"
DATABASES["default"]["ENGINE"] = DATABASE_ENGINE
# Persistent connections: a new PostgreSQL connection costs more than a whole order.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
# A reused connection idle for DATABASE_HEALTH_CHECK_IDLE_SECONDS is checked with one `SELECT 1`
# round trip at the start of a request, so a request after a database restart reconnects
# instead of failing; a busy one is not (core/postgresql/base.py). CONN_HEALTH_CHECKS=false
# turns the check off: the first request on each stale connection after a restart then answers
# 503 service_unavailable.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=True)
DATABASE_HEALTH_CHECK_IDLE_SECONDS = env.float("DATABASE_HEALTH_CHECK_IDLE_SECONDS", default=1.0)
# Locks must end when the service returns, not after the response is rendered.
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# A database that never answers a new connection (a host gone from the network, a frozen
# server) is a 503 after this many seconds, not a request held for psycopg's own 130 s, past
# gunicorn's worker timeout. libpq's minimum is 2.
DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
    "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5)
)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Read replicas and PgBouncer (docs/DESIGN.md, "Scaling"; core/replicas.py says what goes where) ---
# Streaming replicas, comma-separated URLs. Without them every query goes to `default` and
# neither the router nor the middleware is installed.
for _number, _url in enumerate(env.list("DATABASE_REPLICA_URLS", default=[]), start=1):
    _replica = environ.Env.db_url_config(_url)
    _replica.update(
        ENGINE=DATABASE_ENGINE,
        CONN_MAX_AGE=DATABASES["default"]["CONN_MAX_AGE"],
        CONN_HEALTH_CHECKS=DATABASES["default"]["CONN_HEALTH_CHECKS"],
        ATOMIC_REQUESTS=False,
        TEST={"MIRROR": "default"},  # tests read "replicas" from the test database itself
    )
    # A replica that is down must be skipped fast, not hold a request for the OS's timeout.
    _replica.setdefault("OPTIONS", {}).setdefault("connect_timeout", env.int("REPLICA_CONNECT_TIMEOUT", default=2))
    DATABASES[f"replica{_number}"] = _replica
REPLICA_MAX_LAG_SECONDS = env.float("REPLICA_MAX_LAG_SECONDS", default=5.0)
REPLICA_CHECK_SECONDS = env.float("REPLICA_CHECK_SECONDS", default=2.0)
if len(DATABASES) > 1:
    DATABASE_ROUTERS = ["core.replicas.ReplicaRouter"]
    MIDDLEWARE.insert(
        MIDDLEWARE.index("core.api.middleware.AuthenticationMiddleware") + 1,
        "core.replicas.ReadYourWritesMiddleware",
    )
# "transaction" when connections go through PgBouncer in transaction pooling mode: a server
# connection is only ours for one transaction, so no cursor may outlive one (Django's
# server-side cursors for .iterator() are WITH HOLD outside a transaction). Prepared statements
# are already off (psycopg 3 with Django's default client-side binding never prepares).
DATABASE_POOLING = env.str("DATABASE_POOLING", default="")
if DATABASE_POOLING == "transaction":
    for _database in DATABASES.values():
        _database["DISABLE_SERVER_SIDE_CURSORS"] = True

# --- Cache: prices and throttles. Redis when several processes serve. ---
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://portfolio")}
# Redis fails open (docs/DESIGN.md, "Faults"; core/cache.py): a cache call waits at most
# CACHE_SOCKET_TIMEOUT, then answers its default; a down Redis is never a 500.
CACHE_SOCKET_TIMEOUT = env.float("CACHE_SOCKET_TIMEOUT", default=0.25)
if CACHES["default"]["BACKEND"] == "django_redis.cache.RedisCache":
    CACHES["default"]["BACKEND"] = "core.cache.FailOpenRedisCache"
    CACHES["default"].setdefault("OPTIONS", {}).update(
        {
            "SOCKET_CONNECT_TIMEOUT": CACHE_SOCKET_TIMEOUT,
            "SOCKET_TIMEOUT": CACHE_SOCKET_TIMEOUT,
            "IGNORE_EXCEPTIONS": True,
        }
    )

# Django's ModelBackend, except that a login that upgrades the password's hash keeps the
# user's API keys bound to it (accounts/backends.py).
AUTHENTICATION_BACKENDS = ["accounts.backends.PasswordBackend"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# The back office writes every time one way, "2026-11-27 18:09:28 UTC" (core/formats/).
FORMAT_MODULE_PATH = ["core.formats"]

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / ".data" / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns about a missing root
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve static files straight from the apps, so `make run` needs no collectstatic step.
WHITENOISE_USE_FINDERS = True

LOGIN_URL = "/api-auth/login/"

# --- Domain settings (docs/DESIGN.md, "How an order flows" and "Prices and the price guard") ---
INITIAL_USD_BALANCE = Decimal(env.str("INITIAL_USD_BALANCE", default="10000.00"))
MIN_ORDER_NOTIONAL = Decimal(env.str("MIN_ORDER_NOTIONAL", default="1.00"))
DEFAULT_ORDER_TTL = timedelta(seconds=env.int("DEFAULT_ORDER_TTL", default=30 * 24 * 3600))
# A resting stop BUY fills at whatever the market is past its stop: it holds this much more.
STOP_BUY_HOLD_MARGIN = Decimal(env.str("STOP_BUY_HOLD_MARGIN", default="0.05"))
# Caps that keep every amount inside its column (docs/DESIGN.md, "Money and precision"): one deposit, and any USD
# balance (checked under the user lock); no order may be worth more than a balance may hold.
MAX_DEPOSIT = Decimal(env.str("MAX_DEPOSIT", default="1000000.00"))
MAX_USD_BALANCE = Decimal(env.str("MAX_USD_BALANCE", default="1000000000.00"))
# The deployment's fill model (docs/DESIGN.md, "Fill model"): what an account without its own
# uses, and the spread the public market data shows. FILL_MODEL names a profile (ideal: the
# last price, whole fills, no fees; realistic); each FILL_* setting overrides one of its
# parameters. The realistic values are orders.fill_model.PROFILES' (a test keeps them equal).
FILL_MODEL = env.str("FILL_MODEL", default="ideal")
_REALISTIC_FILLS = FILL_MODEL == "realistic"
FILL_SPREAD_BPS = Decimal(env.str("FILL_SPREAD_BPS", default="10" if _REALISTIC_FILLS else "0"))
FILL_SLIPPAGE = env.str("FILL_SLIPPAGE", default="volume_share" if _REALISTIC_FILLS else "none")
FILL_VOLUME_LIMIT = Decimal(env.str("FILL_VOLUME_LIMIT", default="0.025"))
FILL_PRICE_IMPACT = Decimal(env.str("FILL_PRICE_IMPACT", default="0.1"))
# The largest share of a minute's volume one resting order takes; empty: resting orders fill whole.
_PARTICIPATION = env.str("FILL_PARTICIPATION", default="0.1" if _REALISTIC_FILLS else "")
FILL_PARTICIPATION = Decimal(_PARTICIPATION) if _PARTICIPATION else None
FILL_MAKER_FEE_BPS = Decimal(env.str("FILL_MAKER_FEE_BPS", default="15" if _REALISTIC_FILLS else "0"))
FILL_TAKER_FEE_BPS = Decimal(env.str("FILL_TAKER_FEE_BPS", default="25" if _REALISTIC_FILLS else "0"))
FILL_SEED = env.int("FILL_SEED", default=0)
PRICE_PROVIDER = env.str("PRICE_PROVIDER", default="simulated")
# The simulated market's USD value traded a minute per asset (drawn between half and 1.5 times it).
SIMULATED_MINUTE_USD_VOLUME = Decimal(env.str("SIMULATED_MINUTE_USD_VOLUME", default="500000"))
COINGECKO_API_URL = env.str("COINGECKO_API_URL", default="https://api.coingecko.com/api/v3")
COINGECKO_API_KEY = env.str("COINGECKO_API_KEY", default="")
COINGECKO_TIMEOUT_SECONDS = env.float("COINGECKO_TIMEOUT_SECONDS", default=5.0)
COINGECKO_RETRIES = env.int("COINGECKO_RETRIES", default=2)
PRICE_CACHE_SECONDS = env.int("PRICE_CACHE_SECONDS", default=10)
PRICE_MAX_AGE_SECONDS = env.int("PRICE_MAX_AGE_SECONDS", default=60)
# Price provider faults (docs/DESIGN.md, "Prices and the price guard"): one call's total time, the circuit breaker, and
# the quotes refused as implausible.
PRICE_DEADLINE_SECONDS = env.float("PRICE_DEADLINE_SECONDS", default=2.0)
PRICE_BREAKER_FAILURES = env.int("PRICE_BREAKER_FAILURES", default=3)
PRICE_BREAKER_RESET_SECONDS = env.float("PRICE_BREAKER_RESET_SECONDS", default=30.0)
MAX_PRICE_JUMP = Decimal(env.str("MAX_PRICE_JUMP", default="0.5"))
# A level further than MAX_PRICE_JUMP from the last good price becomes good only once the
# provider has kept answering it for PRICE_CONFIRM_SECONDS across PRICE_CONFIRM_FETCHES fetches
# spread over that time (assets/price_guard.py). 120 s and 3: CoinGecko refreshes a price about
# once a minute, so three fetches a minute apart see three of its updates, not one glitch
# served three times; a real move that large pauses the asset's trading for two minutes.
PRICE_CONFIRM_SECONDS = max(1, env.int("PRICE_CONFIRM_SECONDS", default=120))
PRICE_CONFIRM_FETCHES = max(2, env.int("PRICE_CONFIRM_FETCHES", default=3))
MIN_PLAUSIBLE_PRICE = Decimal(env.str("MIN_PLAUSIBLE_PRICE", default="0.00000001"))
MAX_PLAUSIBLE_PRICE = Decimal(env.str("MAX_PLAUSIBLE_PRICE", default="100000000"))

# --- Price history (docs/DESIGN.md, "Ledgers"): one recorded price per asset per window; older than
# the retention, `prune_price_history` thins it to one price per asset and day.
PRICE_RECORD_SECONDS = max(1, env.int("PRICE_RECORD_SECONDS", default=60))
PRICE_HISTORY_RETENTION_DAYS = max(1, env.int("PRICE_HISTORY_RETENTION_DAYS", default=30))

# --- Streams: trade updates and market data over WebSocket (docs/DESIGN.md, "Streams") ---
# Where each server process reads events (and LISTENs for prices): the primary. Empty: the database of
# DATABASE_URL, which is right unless DATABASE_URL goes through PgBouncer in transaction
# pooling (where LISTEN does not work): then set this to the primary.
STREAM_DATABASE_URL = env.str("STREAM_DATABASE_URL", default="")
# Limits, Alpaca's where Alpaca has one: connections of one key to one stream (per server
# process), symbols one market data connection may subscribe, the largest message a client
# may send (its frames joined), seconds to authenticate after connecting, and the messages
# that may wait for one client before it is dropped as too slow.
STREAM_CONNECTIONS_PER_KEY = env.int("STREAM_CONNECTIONS_PER_KEY", default=1)
STREAM_SYMBOLS_PER_CONNECTION = env.int("STREAM_SYMBOLS_PER_CONNECTION", default=100)
STREAM_MAX_MESSAGE_BYTES = env.int("STREAM_MAX_MESSAGE_BYTES", default=64 * 1024)
STREAM_AUTH_TIMEOUT_SECONDS = env.float("STREAM_AUTH_TIMEOUT_SECONDS", default=10.0)
STREAM_QUEUE_LENGTH = env.int("STREAM_QUEUE_LENGTH", default=1000)
# How often each process reads new order events (the delay a trade update may add), and how
# long they are kept for every process to read them.
STREAM_POLL_SECONDS = env.float("STREAM_POLL_SECONDS", default=0.05)
STREAM_EVENT_RETENTION_SECONDS = env.float("STREAM_EVENT_RETENTION_SECONDS", default=300.0)
# A minute's bars are published this long after it closes, for its last price to be recorded.
STREAM_BAR_DELAY_SECONDS = env.float("STREAM_BAR_DELAY_SECONDS", default=2.0)

# --- Who the client is (docs/DESIGN.md, "Faults") ---
# How many reverse proxies in front of the app append to X-Forwarded-For and may be believed.
# 0 (clients connect directly): the socket's address, and a forged header changes nothing.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

# --- REST framework (README, "The API in short") ---
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Tokens end when the password changes; API keys are for programs, in Alpaca's headers.
        "accounts.authentication.PasswordBoundTokenAuthentication",
        "alpaca_compat.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "core.api.defaults.NewestFirstCursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PARSER_CLASSES": [
        "core.api.defaults.DecimalJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    # DRF's negotiation, its answer remembered per Accept header (core/api/negotiation.py).
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "core.api.negotiation.RememberingNegotiation",
    "DEFAULT_SCHEMA_CLASS": "core.api.openapi.ErrorDocumentingAutoSchema",
    # The browsable API's page descriptions: an action's own docstring, inline code as code.
    "VIEW_DESCRIPTION_FUNCTION": "core.api.descriptions.view_description",
    "EXCEPTION_HANDLER": "core.api.errors.exception_handler",
    # Throttles key anonymous clients on core.api.throttles.client_address (TRUSTED_PROXY_COUNT);
    # 0 also keeps DRF's own get_ident, should anything call it, off the forgeable header.
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "DEFAULT_THROTTLE_CLASSES": ["core.api.throttles.UserThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "user": env.str("THROTTLE_USER_RATE", default="6000/min"),
        "orders": env.str("THROTTLE_ORDER_RATE", default="1200/min"),
        # Market data without a key (/v1beta3/crypto/us/), per client address: tight, since
        # anyone may ask (core/api/throttles.py).
        "anon_market": env.str("THROTTLE_ANON_MARKET_RATE", default="60/min"),
        # Logins (API token, browsable API, admin) per client address and per username;
        # registrations per client address (core/api/throttles.py).
        "auth": env.str("THROTTLE_AUTH_RATE", default="20/min"),
        "login_username": env.str("THROTTLE_LOGIN_USERNAME_RATE", default="10/min"),
        "register": env.str("THROTTLE_REGISTER_RATE", default="10/hour"),
    },
    "COERCE_DECIMAL_TO_STRING": True,
    "DATETIME_FORMAT": "iso-8601",
}

# The API documents' settings, under the name drf-spectacular reads.
SPECTACULAR_SETTINGS = {  # drf-spectacular's required name (docs/DESIGN.md, "API documents")
    "TITLE": "Portfolio service API",
    "DESCRIPTION": "Paper trading of crypto assets against a USD balance, with an append-only ledger.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the sidecar package: the docs work with no network.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.api.openapi.require_a_digit_in_decimal_patterns",
        "core.api.openapi.put_the_token_scheme_first",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="WARNING")},
    # 4xx answers: one line each, without the traceback Django attaches (core/log_filters.py).
    "filters": {"client_errors_without_traceback": {"()": "core.log_filters.ClientErrorsWithoutTraceback"}},
    "loggers": {"django.request": {"filters": ["client_errors_without_traceback"]}},
}

# Behind HTTPS (production), HTTPS=true turns on what `check --deploy` asks for. Off by default
# so that `make run` works on http://127.0.0.1.
HTTPS = env.bool("HTTPS", default=False)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
if env.bool("BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
