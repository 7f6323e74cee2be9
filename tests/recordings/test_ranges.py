"""HTTP Range answers for seeking in the audio player."""

from __future__ import annotations

import pytest

from recordings.ranges import byte_range


@pytest.mark.parametrize(
    ("header", "status", "start", "end"),
    [
        (None, 200, 0, 999),
        ("", 200, 0, 999),
        ("bytes=0-", 206, 0, 999),
        ("bytes=0-0", 206, 0, 0),
        ("bytes=100-199", 206, 100, 199),
        ("bytes=500-", 206, 500, 999),
        ("bytes=900-5000", 206, 900, 999),
        ("bytes=-100", 206, 900, 999),
        ("bytes=-5000", 206, 0, 999),
        ("Bytes = 10 - 20", 206, 10, 20),
        ("bytes=999-", 206, 999, 999),
        ("bytes=1000-", 416, 0, -1),
        ("bytes=1000-1001", 416, 0, -1),
        ("bytes=-0", 416, 0, -1),
        ("bytes=200-100", 416, 0, -1),
        ("bytes=abc", 416, 0, -1),
        ("bytes=-", 416, 0, -1),
        ("bytes=1-2-3", 416, 0, -1),
        ("items=0-10", 200, 0, 999),
        ("bytes=0-10,20-30", 200, 0, 999),
    ],
)
def test_range_answers(header: str | None, status: int, start: int, end: int) -> None:
    answer = byte_range(header, 1000)
    assert (answer.status, answer.start, answer.end) == (status, start, end)


def test_partial_answer_headers() -> None:
    answer = byte_range("bytes=100-199", 1000)
    assert answer.headers["Content-Range"] == "bytes 100-199/1000"
    assert answer.headers["Content-Length"] == "100" and answer.length == 100
    assert answer.headers["Accept-Ranges"] == "bytes"


def test_unsatisfiable_answer_names_the_size() -> None:
    answer = byte_range("bytes=2000-", 1000)
    assert answer.headers["Content-Range"] == "bytes */1000" and answer.length == 0


def test_an_empty_file_has_no_satisfiable_range() -> None:
    assert byte_range("bytes=0-", 0).status == 416
    assert byte_range("bytes=-10", 0).status == 416
    assert byte_range(None, 0).status == 200 and byte_range(None, 0).length == 0
