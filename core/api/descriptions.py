"""What the browsable API writes above each page: REST_FRAMEWORK's VIEW_DESCRIPTION_FUNCTION.

DRF's own (``rest_framework.views.get_view_description``) took a viewset's class docstring
for every page of it, so an order's page said "Your orders, newest first", and without the
``markdown`` package it wrote the docstrings' inline code with its backticks and broke
lines where the source wraps. Like DRF's, this module must not import DRF's views (see
``core.api.defaults``).
"""

from __future__ import annotations

import re

from django.utils.encoding import smart_str
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from rest_framework.utils import formatting

# ``code`` (reStructuredText) or `code` (Markdown), as the docstrings write it.
_INLINE_CODE = re.compile(r"``(.+?)``|`([^`\n]+)`")


def view_description(view, html: bool = False) -> str:
    """The view's description: one given to the view (DRF sets it for a viewset's extra
    actions), else the docstring of the viewset action being shown when it has its own
    (``retrieve`` for an object's page), else the class docstring; the docstring the
    OpenAPI document gives the operation (drf-spectacular's rule). In HTML, inline code is
    set as ``<code>`` and paragraphs are the blank-line separated blocks."""
    description = getattr(view, "description", None)
    if description is None:
        description = _action_docstring(view) or view.__class__.__doc__ or ""
    description = formatting.dedent(smart_str(description))
    return markup(description) if html else description


def _action_docstring(view) -> str | None:
    action = getattr(view, "action", None)
    method = getattr(view, action, None) if action else None
    if method is None or getattr(method, "__module__", "").startswith("rest_framework"):
        return None  # DRF's own mixins describe nothing of this API
    return method.__doc__


def markup(description: str) -> SafeString:
    """Plain docstring text as HTML: escaped, inline code in ``<code>``, one ``<p>`` per
    paragraph with its source line breaks as spaces."""
    paragraphs = [" ".join(block.split()) for block in re.split(r"\n\s*\n", description.strip())]
    return mark_safe("".join(f"<p>{_code_spans(escape(text))}</p>" for text in paragraphs if text))  # noqa: S308 - escaped above


def _code_spans(text: str) -> str:
    return _INLINE_CODE.sub(lambda match: f"<code>{match.group(1) or match.group(2)}</code>", text)
