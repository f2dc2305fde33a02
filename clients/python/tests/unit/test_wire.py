"""The wire format's pieces: timestamps, URLs, answers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest

from credpool import CredpoolError, LeaseExpired, ServerUnavailable
from credpool._wire import (
    error_for,
    parse_datetime,
    parse_report,
    parse_retry_after,
    reported_url,
)

from .fakes import answer, lease_json

UTC = timezone.utc


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-11-30T02:00:00.000Z", datetime(2026, 11, 30, 2, 0, 0, tzinfo=UTC)),
        ("2026-11-30T02:00:00Z", datetime(2026, 11, 30, 2, 0, 0, tzinfo=UTC)),
        ("2026-11-30t02:00:00.5z", datetime(2026, 11, 30, 2, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-30T02:00:00.123456789Z", datetime(2026, 11, 30, 2, 0, 0, 123456, tzinfo=UTC)),
        (
            "2026-11-30T03:30:00+01:30",
            datetime(2026, 11, 30, 3, 30, tzinfo=timezone(timedelta(hours=1, minutes=30))),
        ),
        ("2026-11-30T02:00:00-05:00", datetime(2026, 11, 30, 7, 0, tzinfo=UTC)),
        ("2016-12-31T23:59:60Z", datetime(2017, 1, 1, 0, 0, 0, tzinfo=UTC)),
        (None, None),
    ],
)
def test_parse_datetime(text: str, expected: datetime) -> None:
    assert parse_datetime(text) == expected


@pytest.mark.parametrize("text", ["yesterday", "2026-11-30", "2026-13-30T00:00:00Z", 12])
def test_parse_datetime_refuses_garbage(text: object) -> None:
    with pytest.raises(CredpoolError, match="malformed"):
        parse_datetime(text)


@pytest.mark.parametrize(
    "url, expected",
    [
        ("https://api.x.ai/v1/chat?key=AIzaSECRET#frag", "https://api.x.ai/v1/chat"),
        ("https://user:pw@api.x.ai:8443/v1", "https://api.x.ai:8443/v1"),
        ("http://[::1]:9/v1", "http://[::1]:9/v1"),
        (None, None),
    ],
)
def test_reported_url_drops_query_and_userinfo(url: str, expected: str) -> None:
    assert reported_url(url) == expected


def test_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert parse_retry_after("-1") is None
    assert parse_retry_after(None) is None


def test_a_wait_answer_with_causes_and_the_fine_kind() -> None:
    raw = answer("wait", None, "rate_limited", status=429, next_available_at="2026-11-30T02:01:00Z")
    raw["classification"]["detail"] = "rate_limited_account"
    raw["causes"] = {"rate_limited": 2, "dead": 1}
    report = parse_report(raw)
    assert report.causes == {"rate_limited": 2, "dead": 1}
    assert report.classification is not None
    assert report.classification.detail == "rate_limited_account"
    assert report.next_available_at == datetime(2026, 11, 30, 2, 1, tzinfo=UTC)


def test_a_report_answer_without_optional_fields() -> None:
    report = parse_report({"action": "rotate", "lease": lease_json()})
    assert report.classification is None and report.retry_after_ms == 0 and report.causes == {}
    assert report.lease is not None and report.lease.live


def test_errors_by_status_and_code() -> None:
    headers = httpx.Headers()
    assert isinstance(
        error_for(404, {"error": {"code": "unknown_lease", "message": "m"}}, headers, "ab"),
        LeaseExpired,
    )
    # another 404 (a route this server lacks) is not an expired lease
    other = error_for(404, {"error": {"code": "no_such_route", "message": "m"}}, headers, "ab")
    assert type(other) is CredpoolError and other.code == "no_such_route"
    assert isinstance(error_for(503, None, headers), ServerUnavailable)
    assert isinstance(error_for(502, "<html>", headers), ServerUnavailable)
    unauthorized = error_for(401, {"error": {"code": "unauthorized", "message": "m"}}, headers)
    assert unauthorized.status == 401 and unauthorized.code == "unauthorized"
