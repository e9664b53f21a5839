"""The WSGI application gunicorn serves (``portfolio_project.wsgi:application``)."""

import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portfolio_project.settings")

application = get_wsgi_application()
get_resolver().url_patterns  # imports every view now rather than in the first request  # noqa: B018

# What is loaded by now (Django, DRF, the views, the models: ~95,000 objects) lives as
# long as the worker. Frozen, it is left out of every garbage collection: a full collection
# scanned it in ~50 ms, long enough to be the slowest requests of a load test (p99).
gc.collect()
gc.freeze()
