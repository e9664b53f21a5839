"""REST_FRAMEWORK's DEFAULT_PAGINATION_CLASS.

Kept out of ``portfolio_project.api`` on purpose: DRF resolves REST_FRAMEWORK's class
paths lazily, and ``rest_framework.views`` reads DEFAULT_PARSER_CLASSES while it is being
imported. A module named in those settings must therefore never import DRF's views, or
whichever setting is resolved first in a process (Django runs system checks in no fixed
order) can meet a half-imported module.
"""

from __future__ import annotations

from rest_framework.pagination import CursorPagination


class NewestFirstCursorPagination(CursorPagination):
    """Cursor pagination, newest first: a page costs the same on the millionth row as on
    the first, unlike OFFSET. The id breaks ties between rows of the same instant."""

    ordering = ("-created_at",)
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
