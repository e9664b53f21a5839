"""The API root: a link to every endpoint that needs no identifier.

DRF's router lists only its own viewsets' lists; a newcomer browsing /api/v1/ did not find
the portfolio, the balance, auth, the docs or health. This view walks the URL patterns it
is given (the whole /api/v1/ list, includes too) when asked, so an endpoint added later is
linked without touching it.
"""

from __future__ import annotations

from collections import OrderedDict

from django.urls import URLPattern, URLResolver, reverse
from drf_spectacular.utils import extend_schema
from rest_framework import permissions
from rest_framework.response import Response
from rest_framework.views import APIView


def _named_routes(patterns, prefix: str = "") -> list[tuple[str, str]]:
    """(route, url name) of every named pattern without a path parameter, in order."""
    routes = []
    for pattern in patterns:
        route = prefix + str(pattern.pattern).lstrip("^").rstrip("$")
        if isinstance(pattern, URLResolver):
            routes += _named_routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern) and pattern.name and "<" not in route and "(" not in route:
            routes.append((route, pattern.name))
    return routes


class ApiRootView(APIView):
    """Everything this API offers: follow a link (log in first, or send your token, for
    the ones that need it)."""

    permission_classes = [permissions.AllowAny]
    patterns: list = []
    exclude_names: frozenset[str] = frozenset({"api-root"})

    @extend_schema(exclude=True)  # a list of links, not an operation a client programs against
    def get(self, request, format=None):
        links = OrderedDict()
        for route, name in _named_routes(self.patterns):
            if name not in self.exclude_names:
                links[route.rstrip("/") or name] = request.build_absolute_uri(reverse(name))
        return Response(links)
