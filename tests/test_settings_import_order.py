"""Every class path in REST_FRAMEWORK resolves whichever is resolved first.

DRF imports these lazily and ``rest_framework.views`` reads DEFAULT_PARSER_CLASSES while it
is itself being imported, so a settings module that imports DRF's views breaks when it is
the first one a process resolves. Django runs system checks from a set, in no fixed order,
so ``check --deploy`` once failed on one CI run in several. Each setting is resolved first
in a fresh interpreter here, which makes that order deterministic.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent

RESOLVE_FIRST = """
import sys, django
django.setup()
from rest_framework.settings import api_settings
getattr(api_settings, sys.argv[1])
"""

IMPORTED_SETTINGS = sorted(
    name
    for name, value in settings.REST_FRAMEWORK.items()
    if name.endswith(("_CLASS", "_CLASSES", "_BACKENDS", "_HANDLER"))
)


@pytest.mark.parametrize("name", IMPORTED_SETTINGS)
def test_rest_framework_setting_resolves_first_in_a_fresh_process(name):
    # given a fresh interpreter with only Django set up
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portfolio_project.settings", "PYTHONPATH": str(ROOT)}
    # when this setting is the first DRF class path it resolves
    result = subprocess.run(
        [sys.executable, "-c", RESOLVE_FIRST, name], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    # then it imports
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_imported_settings_are_all_covered():
    assert {"DEFAULT_PAGINATION_CLASS", "DEFAULT_PARSER_CLASSES", "EXCEPTION_HANDLER"} <= set(IMPORTED_SETTINGS)
