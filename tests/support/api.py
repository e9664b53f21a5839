"""Calling the API from a test, and reading its answers."""

from __future__ import annotations


def post_json(client, path: str, body: dict | None = None):
    """The response to POSTing ``body`` (nothing by default) as JSON."""
    return client.post(path, body or {}, format="json")


def error_code(response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]["code"]


def csv_table(response) -> list[list[str]]:
    """A CSV export's rows, header first, read from its stream (WSGI: a synchronous one)."""
    import csv
    import io

    assert response.streaming, "an export streams"
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def json_pages(client, url: str, params: dict | None = None) -> list[dict]:
    """Every row of a cursor-paginated list, following ``next`` from ``url``."""
    rows, response = [], client.get(url, params or {})
    while True:
        assert response.status_code == 200, response.content
        body = response.json()
        rows += body["results"]
        if not body["next"]:
            return rows
        response = client.get(body["next"])


def as_csv_cells(row: dict, text: frozenset[str] = frozenset()) -> list[str]:
    """A JSON row as the CSV export writes it: null empty, booleans as JSON writes them, free
    ``text`` a spreadsheet would run as a formula behind an apostrophe."""
    cells = []
    for name, value in row.items():
        if value is None:
            cells.append("")
        elif isinstance(value, bool):
            cells.append("true" if value else "false")
        elif name in text and str(value).startswith(("=", "+", "-", "@", "\t", "\r")):
            cells.append(f"'{value}")
        else:
            cells.append(str(value))
    return cells


def asgi_get(path: str, *, token: str, params: dict | None = None, headers: dict | None = None):
    """GET ``path`` through Django's ASGI handler (AsyncClient), reading a streamed body as an
    ASGI server does; any warning is an error (Django warns when it has to read a stream whole
    to serve it the other way). Returns (status, headers, body). Its requests run on threads
    of their own, with their own connections: call it from a ``transaction=True`` test."""
    import warnings

    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    async def get():
        response = await AsyncClient().get(
            path, params or {}, headers={"Authorization": f"Token {token}", **(headers or {})}
        )
        if response.streaming:
            assert response.is_async, "under ASGI an export is an asynchronous stream"
            body = b"".join([chunk async for chunk in response.streaming_content])
        else:
            body = response.content
        return response.status_code, response.headers, body

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return async_to_sync(get)()
