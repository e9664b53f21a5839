"""Calling the API from a test."""

from __future__ import annotations


def post_json(client, path: str, body: dict | None = None):
    """The response to POSTing ``body`` (nothing by default) as JSON."""
    return client.post(path, body or {}, format="json")
