"""Content negotiation that remembers its answers (REST_FRAMEWORK's default).

DRF parses the Accept header into media types and matches them against the view's renderers
on every request: ~4% of a market order's CPU, to reach the answer the same header got on the
last request. The choice depends only on the renderers' classes, the format asked for
(``?format=`` or a suffix) and the Accept header, so it is remembered by those, for a bounded
number of distinct headers; a header that is refused (406) is never remembered.

This module imports no DRF view: DRF resolves its default classes while ``rest_framework.views``
itself is being imported.
"""

from __future__ import annotations

from rest_framework.negotiation import DefaultContentNegotiation

# Distinct (renderers, format, Accept) seen: clients send few. A client inventing headers
# fills it, and it starts over: it never holds more, and real clients' headers come back.
_MAX_REMEMBERED = 512
# Real clients' Accept headers are short; a longer one (DRF reads up to 8 KB of it) is
# negotiated as DRF does, never kept.
_MAX_ACCEPT_REMEMBERED = 256


class RememberingNegotiation(DefaultContentNegotiation):
    _chosen: dict[tuple, tuple[int, str]] = {}  # shared by every request of the process

    def select_renderer(self, request, renderers, format_suffix=None):
        accept = request.META.get("HTTP_ACCEPT")
        if accept is not None and len(accept) > _MAX_ACCEPT_REMEMBERED:
            return super().select_renderer(request, renderers, format_suffix)
        format_asked = format_suffix or request.query_params.get(self.settings.URL_FORMAT_OVERRIDE)
        key = (tuple(map(type, renderers)), format_asked, accept)
        chosen = self._chosen.get(key)
        if chosen is not None:
            index, media_type = chosen
            return renderers[index], media_type
        renderer, media_type = super().select_renderer(request, renderers, format_suffix)
        index = next(i for i, candidate in enumerate(renderers) if candidate is renderer)
        if len(self._chosen) >= _MAX_REMEMBERED:
            self._chosen.clear()  # one step for every thread: no iteration a concurrent write could break
        self._chosen[key] = (index, media_type)
        return renderer, media_type
