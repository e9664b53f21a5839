"""CSV exports of the API's lists (docs/DESIGN.md, "Reset and exports").

A list view that takes ``?format=csv`` (or ``Accept: text/csv``) answers every row of its
filter, not one page, as a CSV file streamed in constant memory: the header is the JSON
serializer's field names, each cell the value exactly as the JSON writes it (null empty,
booleans ``true``/``false``); free-text columns that a spreadsheet would run as a formula get
a leading apostrophe (OWASP's CSV injection advice, as the back office's exports do).

The rows are read in chunks, each one query continuing from the last row of the previous one
(a keyset: no OFFSET, which rereads every row before the page, and no server-side cursor,
which PgBouncer in transaction pooling cannot hold across statements), in the list's order.

How the chunks are pulled depends on the server. Under WSGI the server iterates the response
synchronously. Django's own ASGI handler reads a synchronous iterator whole into a list
before sending a byte, so under ASGI the response is an asynchronous iterator that reads each
chunk with ``sync_to_async(thread_sensitive=True)``: on the request's thread and database
connection. A server that pulls an ASGI request's stream synchronously on the request's own
thread (``iter(response)``, as ``portfolio_project/asgi.py`` may) gets the synchronous iterator
too, never Django's read-it-whole fallback.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.http import content_disposition_header
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

CSV_MEDIA_TYPE = "text/csv"
CHUNK_ROWS = 2000

# What a spreadsheet reads as the start of a formula (and "-", which starts one too).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """Free text for a CSV cell that spreadsheets will not run as a formula."""
    return f"'{text}" if text.startswith(_FORMULA_PREFIXES) else text


def cell(value, *, text: bool = False) -> str:
    """A JSON value as a CSV cell: strings as they are (free ``text`` made spreadsheet-safe),
    null empty, booleans as JSON writes them."""
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    value = str(value)
    return spreadsheet_safe(value) if text else value


def cells(rendered: dict, *, text: frozenset[str] = frozenset()) -> list[str]:
    """A row as its serializer rendered it (for JSON), as CSV cells in the same order; the
    ``text`` columns are free text (spreadsheet-safe)."""
    return [cell(value, text=name in text) for name, value in rendered.items()]


class CsvRenderer(BaseRenderer):
    """Makes ``?format=csv`` and ``Accept: text/csv`` select the export (``CsvExportMixin``).
    It renders nothing itself: an export answers with its own streaming response, and an error
    answers in the API's JSON error shape."""

    media_type = CSV_MEDIA_TYPE
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return JSONRenderer().render(data, renderer_context=renderer_context)


class CsvExportMixin:
    """For an APIView (before ``ReplicaReadMixin``): ``wants_csv()`` tells the view to answer
    ``csv_export(...)``; errors stay JSON in the error shape, whatever was asked. ``csv_actions``:
    the viewset actions that export (None: every request of the view). An export reads the
    primary: its chunks are read after the view returns, when a replica route has ended."""

    csv_actions: frozenset[str] | None = None
    csv_chunk_rows = CHUNK_ROWS  # rows read by one query

    def get_renderers(self):
        renderers = super().get_renderers()
        if self.csv_actions is None or getattr(self, "action", None) in self.csv_actions:
            renderers.append(CsvRenderer())
        return renderers

    def _replica_ok(self, request) -> bool:
        return not self.wants_csv() and super()._replica_ok(request)

    def wants_csv(self) -> bool:
        return isinstance(getattr(self.request, "accepted_renderer", None), CsvRenderer)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if isinstance(response, Response) and isinstance(response.accepted_renderer, CsvRenderer):
            response.accepted_renderer = JSONRenderer()
            response.accepted_media_type = JSONRenderer.media_type
        return response

    def csv_export(self, read_chunk: Callable[[Any], Chunk], *, header: Sequence[str], username: str, what: str):
        """The streaming answer (``CsvExportResponse``), named ``<username>-<what>-<date>.csv``."""
        filename = f"{username}-{what}-{timezone.now().date().isoformat()}.csv"
        asynchronous = isinstance(self.request._request, ASGIRequest)
        return CsvExportResponse(read_chunk, header=header, filename=filename, asynchronous=asynchronous)


@dataclass(frozen=True, slots=True)
class Chunk:
    """One chunk of an export: its CSV text, and where the next one starts (None: it is the last)."""

    data: bytes
    next: Any


def csv_lines(rows: Sequence[Sequence[str]]) -> bytes:
    """CSV text of ``rows`` (each a list of cells), as Excel and Python's csv module write it."""
    out = _Lines()
    writer = csv.writer(out)
    writer.writerows(rows)
    return "".join(out.parts).encode()


class _Lines:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> None:
        self.parts.append(text)


class CsvExportResponse(StreamingHttpResponse):
    """An attachment of the CSV the ``read_chunk`` function reads: ``read_chunk(position)``
    (``None`` for the first) runs one query and returns a ``Chunk``. Synchronous or
    asynchronous as the server pulls it (see the module docstring); either way it holds one
    chunk at a time."""

    def __init__(self, read_chunk: Callable, *, header: Sequence[str], filename: str, asynchronous: bool) -> None:
        self._read_chunk = read_chunk
        self._header = csv_lines([list(header)])
        lines = self._async_lines() if asynchronous else self._sync_lines()
        super().__init__(lines, content_type=f"{CSV_MEDIA_TYPE}; charset=utf-8")
        self["Content-Disposition"] = content_disposition_header(True, filename)
        self["Cache-Control"] = "private, no-store"

    def _sync_lines(self) -> Iterator[bytes]:
        yield self._header
        position = None
        while True:
            chunk = self._read_chunk(position)
            if chunk.data:
                yield chunk.data
            if chunk.next is None:
                return
            position = chunk.next

    async def _async_lines(self) -> AsyncIterator[bytes]:
        read_chunk = sync_to_async(self._read_chunk, thread_sensitive=True)
        yield self._header
        position = None
        while True:
            chunk = await read_chunk(position)
            if chunk.data:
                yield chunk.data
            if chunk.next is None:
                return
            position = chunk.next

    def __iter__(self):
        # A server pulling an ASGI request's stream synchronously, on the request's thread:
        # the synchronous lines, not Django's fallback that reads the asynchronous ones whole.
        if self.is_async:
            return iter(self._sync_lines())
        return super().__iter__()

    async def __aiter__(self):
        if not self.is_async:  # an ASGI server given a WSGI request's response: never read it whole
            async for part in self._async_lines():
                yield part
            return
        async for part in super().__aiter__():
            yield part
