"""The import rule of SPEC section 1, read from the source: imports run
``portfolio_project -> backoffice -> alpaca_compat -> orders -> balances -> assets -> accounts
-> core``,
never back, and nothing goes around the rule (``apps.get_model``) or into Django's
private model state (``_state.``)."""

from __future__ import annotations

import ast
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
