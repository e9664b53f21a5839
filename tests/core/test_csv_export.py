"""core.api.csv_export: a CSV export reads one chunk at a time, as the server pulls it, whether
the server pulls synchronously (WSGI; an ASGI server that pulls on the request's thread) or
asynchronously (Django's ASGI handler), and never reads its stream whole."""

from __future__ import annotations

import threading
import warnings

import pytest
from asgiref.sync import async_to_sync

from core.api.csv_export import Chunk, CsvExportResponse, cell, csv_lines, spreadsheet_safe


class Source:
    """Three chunks of two rows, recording on which thread and in which order each was read."""

    def __init__(self) -> None:
        self.reads: list[tuple[object, str]] = []

    def __call__(self, position):
        self.reads.append((position, threading.current_thread().name))
        start = position or 0
        rows = [[f"row {n}", str(n)] for n in range(start, start + 2)]
        return Chunk(csv_lines(rows), start + 2 if start < 4 else None)


EXPECTED = b"name,n\r\nrow 0,0\r\nrow 1,1\r\nrow 2,2\r\nrow 3,3\r\nrow 4,4\r\nrow 5,5\r\n"


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_synchronous_pull_reads_a_chunk_at_a_time_on_the_pulling_thread(asynchronous):
    # given a response made for a WSGI request, or for an ASGI one that a server pulls on its
    # request's thread
    source = Source()
    response = CsvExportResponse(source, header=["name", "n"], filename="x.csv", asynchronous=asynchronous)

    # when
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Django warns when it reads a stream whole
        parts = iter(response)
        head, first = next(parts), next(parts)
        reads_after_first = len(source.reads)
        rest = list(parts)

    # then nothing was read ahead, and every read ran here
    assert (head, reads_after_first) == (b"name,n\r\n", 1)
    assert b"".join([head, first, *rest]) == EXPECTED
    assert [position for position, _ in source.reads] == [None, 2, 4]
    assert {thread for _, thread in source.reads} == {threading.current_thread().name}


@pytest.mark.parametrize("asynchronous", [True, False])
def test_an_asynchronous_pull_reads_a_chunk_at_a_time_off_the_event_loop(asynchronous):
    # given
    source = Source()
    response = CsvExportResponse(source, header=["name", "n"], filename="x.csv", asynchronous=asynchronous)

    # when an ASGI handler pulls it as Django's does (async for over the response)
    async def pull():
        parts, reads_seen = [], []
        async for part in response:
            parts.append(part)
            reads_seen.append(len(source.reads))
        return parts, reads_seen, threading.current_thread().name

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parts, reads_seen, loop_thread = async_to_sync(pull)()

    # then each chunk was read when its turn came, never on the event loop's thread
    assert b"".join(parts) == EXPECTED
    assert reads_seen == [0, 1, 2, 3]
    assert loop_thread not in {thread for _, thread in source.reads}


def test_the_response_is_an_attachment_that_is_not_cached():
    response = CsvExportResponse(Source(), header=["a"], filename="dana-orders-2026-12-07.csv", asynchronous=False)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="dana-orders-2026-12-07.csv"'
    assert response["Cache-Control"] == "private, no-store"


def test_a_name_outside_ascii_is_sent_as_rfc_6266_says():
    response = CsvExportResponse(Source(), header=["a"], filename="zoë-orders-2026-12-07.csv", asynchronous=False)
    assert response["Content-Disposition"] == "attachment; filename*=utf-8''zo%C3%AB-orders-2026-12-07.csv"


@pytest.mark.parametrize(
    ("value", "text", "written"),
    [
        (None, False, ""),
        (True, False, "true"),
        (False, False, "false"),
        ("-633.90", False, "-633.90"),  # a number keeps its sign
        ("=1+2", True, "'=1+2"),
        ("+1", True, "'+1"),
        ("-x", True, "'-x"),
        ("@SUM(A1)", True, "'@SUM(A1)"),
        ("\tx", True, "'\tx"),
        ("plain note", True, "plain note"),
        ('say "hi", twice', True, 'say "hi", twice'),
    ],
)
def test_a_value_is_written_as_the_json_writes_it_and_free_text_runs_no_formula(value, text, written):
    assert cell(value, text=text) == written


def test_quotes_commas_and_newlines_are_quoted_as_csv_does():
    assert csv_lines([["a,b", 'say "hi"', "two\nlines"]]) == b'"a,b","say ""hi""","two\nlines"\r\n'
    assert spreadsheet_safe("=x") == "'=x"
