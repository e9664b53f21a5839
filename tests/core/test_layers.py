"""The import rule (docs/DESIGN.md, "What each app owns"), read from the source: imports run
``portfolio_project -> backoffice -> alpaca_compat -> orders -> balances -> assets -> accounts
-> core``,
never back, and nothing goes around the rule (``apps.get_model``) or into Django's
private model state (``_state.``); and no app below alpaca_compat writes Alpaca's wire."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ORDER = ["core", "accounts", "assets", "balances", "orders", "alpaca_compat", "backoffice", "portfolio_project"]


def _modules(package: str) -> list[Path]:
    return [p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts]


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names & set(ORDER)


@pytest.mark.parametrize("package", ORDER)
def test_a_package_imports_only_packages_below_it(package):
    below = set(ORDER[: ORDER.index(package) + 1])
    wrong = {
        str(path.relative_to(ROOT)): sorted(_imported_packages(path) - below)
        for path in _modules(package)
        if _imported_packages(path) - below
    }
    assert wrong == {}


@pytest.mark.parametrize("package", ["core", "accounts", "assets", "balances", "orders", "backoffice"])
def test_no_module_goes_around_the_rule_or_into_private_model_state(package):
    offenders = [
        str(path.relative_to(ROOT))
        for path in _modules(package)
        if "apps.get_model" in path.read_text() or "._state." in path.read_text()
    ]
    assert offenders == []


# --- No lower app writes a wire format ---------------------------------------------------
#
# The rule: the string literals of core, accounts, assets, balances and orders (docstrings
# aside, which may explain) never name Alpaca ("alpaca", or its header prefix "apca", in any
# case) and are never one of the words of Alpaca's wire that are not the engine's own: its
# spellings of order statuses and trade-update events. Alpaca's wire is alpaca_compat's.
# The exceptions, each a value the engine stores and tests pin, are listed with their file.
LOWER = ["core", "accounts", "assets", "balances", "orders"]
ALPACA_NAMES = re.compile(r"alpaca|apca", re.IGNORECASE)
ALPACA_WORDS = {
    "canceled",  # the engine's status is CANCELLED
    "partially_filled",
    "partial_fill",
    "pending_new",
    "pending_cancel",
    "pending_replace",
    "done_for_day",
    "accepted_for_bidding",
    "order_replace_rejected",
    "order_cancel_rejected",
}
EXCEPTIONS = {
    # Which API placed an order (Order.PlacedVia), stored and shown to support.
    ("orders/models.py", "alpaca"),
    ("orders/models.py", "Alpaca /v2"),
}


def _code_strings(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


@pytest.mark.parametrize("package", LOWER)
def test_a_lower_app_never_writes_alpacas_wire(package):
    offenders = sorted(
        (str(path.relative_to(ROOT)), text)
        for path in _modules(package)
        for text in _code_strings(path)
        if (ALPACA_NAMES.search(text) or text in ALPACA_WORDS) and (str(path.relative_to(ROOT)), text) not in EXCEPTIONS
    )
    assert offenders == []
