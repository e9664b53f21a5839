"""Logging filters named in settings.LOGGING."""

from __future__ import annotations

import logging


class ClientErrorsWithoutTraceback(logging.Filter):
    """``django.request`` logs every 4xx answer at WARNING with the exception behind it, so a
    deliberate ``PermissionDenied`` (a support user opening a page they may not) printed a
    full traceback. A client error is no bug: keep its one line, drop the traceback. Server
    errors (5xx) keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        status_code = getattr(record, "status_code", None)
        if status_code is not None and 400 <= status_code < 500:
            record.exc_info = None
            record.exc_text = None
        return True
