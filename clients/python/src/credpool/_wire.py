"""The data plane's wire format (version 1), without I/O.

Both clients build their requests and read the answers here, so the synchronous and the async
client cannot drift apart. Nothing here logs, and no error message quotes a secret.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from .errors import BadRequest, CredpoolError, LeaseExpired, PoolExhausted, ServerUnavailable
from .lease import Classification, Lease, Report

#: The base URL used over a Unix socket (the host is not looked at).
UDS_BASE_URL = "http://credpool"

LEASE_PATH = "/v1/lease"
HEALTH_PATH = "/v1/health"

#: The most of a provider's error body a report carries (the server caps request bodies; a
#: provider's error body that long carries nothing more the classifier needs).
MAX_REPORTED_BODY_CHARS = 64 * 1024
#: The most response headers a report carries.
MAX_REPORTED_HEADERS = 200

#: Connect timeout ceiling, seconds: a local service either accepts at once or is not there.
CONNECT_TIMEOUT_CEILING_S = 2.0

ReportSubject = Union[httpx.Response, BaseException]


def timeout(seconds: float) -> httpx.Timeout:
    """The clients' timeouts: ``seconds`` for reads, writes and the pool, connect capped."""
    if seconds <= 0:
        raise ValueError("timeout must be positive")
    return httpx.Timeout(seconds, connect=min(seconds, CONNECT_TIMEOUT_CEILING_S))


def client_settings(
    socket: Optional[str],
    url: Optional[str],
    token: Optional[str],
    token_file: Optional[str],
) -> Tuple[str, Dict[str, str]]:
    """Validate a client's addressing and return its base URL and default headers."""
    if (socket is None) == (url is None):
        raise ValueError("give exactly one of socket= (a Unix socket path) or url= (http://…)")
    if token is not None and token_file is not None:
        raise ValueError("give at most one of token= or token_file=")
    headers = {"accept": "application/json", "user-agent": "credpool-python"}
    if socket is not None:
        if token is not None or token_file is not None:
            raise ValueError(
                "token/token_file are for url= (TCP); the socket's file mode is its authentication"
            )
        return UDS_BASE_URL, headers
    assert url is not None
    scheme = urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise ValueError("url must start with http:// or https://")
    if token_file is not None:
        with open(token_file, encoding="utf-8") as f:
            token = f.read().strip()
        if not token:
            raise ValueError(f"the token file {token_file} is empty")
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return url.rstrip("/"), headers


# -- request bodies -------------------------------------------------------------------------


def lease_body(
    provider: Optional[str], url: Optional[str], model: Optional[str]
) -> Dict[str, Any]:
    """The body of ``POST /v1/lease``."""
    if (provider is None) == (url is None):
        raise ValueError("give exactly one of provider= or url=")
    body: Dict[str, Any] = {"provider": provider} if provider is not None else {"url": url}
    if model is not None:
        body["model"] = model
    return body


def report_path(lease_id: str) -> str:
    """The path of ``POST /v1/leases/{id}/report``."""
    return f"/v1/leases/{quote(lease_id, safe='')}/report"


def lease_path(lease_id: str) -> str:
    """The path of ``DELETE /v1/leases/{id}``."""
    return f"/v1/leases/{quote(lease_id, safe='')}"


def is_success(status: int) -> bool:
    """Whether a provider status counts as the credential working (1xx–3xx)."""
    return status < 400


def reported_url(url: Union[httpx.URL, str, None]) -> Optional[str]:
    """A request URL as reported: scheme, host, port and path only.

    The query and any ``user:password@`` are dropped (some providers accept a key in the
    query), so a report never carries a secret in its URL.
    """
    if url is None:
        return None
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def response_request_url(response: httpx.Response) -> Optional[str]:
    """The reported URL of the request a response answers, when it has one."""
    try:
        return reported_url(response.request.url)
    except RuntimeError:  # a Response built without a request
        return None


def exception_request_url(exc: BaseException) -> Optional[str]:
    """The reported URL of the request an httpx exception is about, when it has one."""
    if isinstance(exc, httpx.RequestError):
        try:
            return reported_url(exc.request.url)
        except RuntimeError:
            return None
    return None


def report_body(subject: Union[ReportSubject, None], body_text: Optional[str]) -> Dict[str, Any]:
    """The body of ``POST /v1/leases/{id}/report``.

    ``subject`` is the provider's response (a 1xx–3xx is a success, anything else a failure
    whose ``body_text`` was read by the caller), an exception (a transport failure), or
    ``None`` (a success).
    """
    if subject is None:
        return {"outcome": "success"}
    if isinstance(subject, httpx.Response):
        if is_success(subject.status_code):
            return {"outcome": "success"}
        text = body_text or ""
        if len(text) > MAX_REPORTED_BODY_CHARS:
            text = text[:MAX_REPORTED_BODY_CHARS]
        headers: List[List[str]] = [
            [name, value] for name, value in subject.headers.multi_items()
        ][:MAX_REPORTED_HEADERS]
        body: Dict[str, Any] = {"status": subject.status_code, "headers": headers, "body": text}
        url = response_request_url(subject)
        if url is not None:
            body["url"] = url
        return body
    if isinstance(subject, BaseException):
        message = str(subject).strip()
        error = f"{type(subject).__name__}: {message}" if message else type(subject).__name__
        body = {"error": error}
        url = exception_request_url(subject)
        if url is not None:
            body["url"] = url
        return body
    raise TypeError("report() takes an httpx.Response or an exception")


def response_text(response: httpx.Response) -> str:
    """A provider response's body as text (it must have been read)."""
    try:
        return response.text
    except UnicodeDecodeError:  # pragma: no cover - httpx decodes with errors="replace"
        return response.content.decode("utf-8", errors="replace")


# -- answers --------------------------------------------------------------------------------

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"([Zz]|[+-]\d{2}:?\d{2})$"
)


def parse_datetime(value: Any) -> Optional[datetime]:
    """An RFC 3339 timestamp as an aware ``datetime`` (``None`` stays ``None``).

    Works on Python 3.9, whose ``fromisoformat`` takes neither ``Z`` nor a fraction of other
    than 3 or 6 digits.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise _malformed("a timestamp is not a string")
    m = _RFC3339.match(value.strip())
    if m is None:
        raise _malformed("a timestamp is not RFC 3339")
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    fraction = (m.group(7) or "0")[:6].ljust(6, "0")
    offset = m.group(8)
    if offset in ("Z", "z"):
        tz = timezone.utc
    else:
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    leap = second == 60  # RFC 3339 allows a leap second; datetime does not
    try:
        parsed = datetime(year, month, day, hour, minute, 59 if leap else second, int(fraction), tz)
    except ValueError:
        raise _malformed("a timestamp is out of range") from None
    return parsed + timedelta(seconds=1) if leap else parsed


def _malformed(what: str) -> CredpoolError:
    return CredpoolError(f"malformed answer from credpool: {what}")


def _field(obj: Mapping[str, Any], name: str, kind: type) -> Any:
    value = obj.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _malformed(f"field `{name}` is missing or not a {kind.__name__}")
    return value


def _optional(obj: Mapping[str, Any], name: str, kind: type) -> Any:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, kind):
        raise _malformed(f"field `{name}` is not a {kind.__name__}")
    return value


def parse_lease(obj: Any) -> Lease:
    """A lease object ``L`` of the wire format (unbound: the client binds it)."""
    if not isinstance(obj, dict):
        raise _malformed("a lease is not an object")
    header = obj.get("header")
    if not isinstance(header, dict):
        raise _malformed("field `header` is missing or not an object")
    expires_at = parse_datetime(_field(obj, "expires_at", str))
    assert expires_at is not None
    return Lease(
        id=_field(obj, "id", str),
        provider=_field(obj, "provider", str),
        entry=_field(obj, "entry", str),
        label=_field(obj, "label", str),
        generation=_field(obj, "generation", int),
        kind=_field(obj, "kind", str),
        base_url=_optional(obj, "base_url", str),
        header_name=_field(header, "name", str),
        header_value=_field(header, "value", str),
        expires_at=expires_at,
    )


def parse_classification(obj: Any) -> Optional[Classification]:
    """A report answer's ``classification`` (``None`` for a success)."""
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise _malformed("field `classification` is not an object")
    return Classification(
        kind=_field(obj, "kind", str),
        status=_optional(obj, "status", int),
        reason=_optional(obj, "reason", str),
        reset_at=parse_datetime(obj.get("reset_at")),
        detail=_optional(obj, "detail", str),
    )


def parse_report(obj: Any) -> Report:
    """A report answer (its ``lease`` unbound: the client binds it)."""
    if not isinstance(obj, dict):
        raise _malformed("a report answer is not an object")
    lease_obj = obj.get("lease")
    retry_after_ms = obj.get("retry_after_ms") or 0
    if not isinstance(retry_after_ms, (int, float)) or isinstance(retry_after_ms, bool):
        raise _malformed("field `retry_after_ms` is not a number")
    return Report(
        action=_field(obj, "action", str),
        classification=parse_classification(obj.get("classification")),
        lease=parse_lease(lease_obj) if lease_obj is not None else None,
        retry_after_ms=max(0, int(retry_after_ms)),
        next_available_at=parse_datetime(obj.get("next_available_at")),
        causes=parse_causes(obj.get("causes")),
    )


def parse_causes(obj: Any) -> Dict[str, int]:
    """``{"rate_limited": 2, "dead": 1}``: entries unavailable, by cause (``{}`` when absent)."""
    if not isinstance(obj, dict):
        return {}
    return {
        str(k): int(v) for k, v in obj.items() if isinstance(v, int) and not isinstance(v, bool)
    }


def decode(response: httpx.Response, lease_id: Optional[str] = None) -> Any:
    """The JSON of a successful data-plane answer, or the typed exception of a failed one.

    ``response`` must have been read.
    """
    status = response.status_code
    try:
        payload: Any = json.loads(response.content) if response.content else None
    except ValueError:
        payload = None
    if status == 200:
        if payload is None:
            raise _malformed("the answer is not JSON")
        return payload
    raise error_for(status, payload, response.headers, lease_id)


def error_for(
    status: int,
    payload: Any,
    headers: Mapping[str, str],
    lease_id: Optional[str] = None,
) -> CredpoolError:
    """The exception for a failed data-plane answer."""
    error = payload.get("error") if isinstance(payload, dict) else None
    code: Optional[str] = None
    message = f"credpool answered HTTP {status}"
    if isinstance(error, dict):
        if isinstance(error.get("code"), str):
            code = error["code"]
        if isinstance(error.get("message"), str) and error["message"]:
            message = error["message"]
    if code == "exhausted":
        assert isinstance(error, dict)
        causes = parse_causes(error.get("causes"))
        next_at = error.get("next_available_at")
        return PoolExhausted(
            message,
            next_available_at=parse_datetime(next_at),
            causes=causes,
            retry_after=parse_retry_after(headers.get("retry-after")),
        )
    if code == "unknown_lease":
        return LeaseExpired(
            f"credpool does not know lease {lease_id or '?'} (expired or released)",
            lease_id=lease_id,
        )
    if status in (400, 413, 422) and code is not None:
        return BadRequest(code, message, status=status)
    if status in (502, 503, 504):
        return ServerUnavailable(message, status=status, code=code)
    if status in (401, 403):
        return CredpoolError(
            f"credpool refused the client (HTTP {status}): check the socket's owner or the "
            "lease token",
            status=status,
            code=code or "unauthorized",
        )
    return CredpoolError(message, status=status, code=code)


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """A ``Retry-After`` header in seconds (delay-seconds only; ``None`` otherwise)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def unavailable(exc: httpx.HTTPError, what: str) -> ServerUnavailable:
    """The :class:`ServerUnavailable` for a transport error talking to credpool."""
    if isinstance(exc, httpx.TimeoutException):
        reason = "timed out"
    elif isinstance(exc, httpx.ConnectError):
        reason = "cannot connect"
    else:
        reason = "connection failed"
    detail = str(exc).strip()
    return ServerUnavailable(
        f"credpool is unavailable ({what}: {reason}{': ' + detail if detail else ''})"
    )


def encode(body: Mapping[str, Any]) -> bytes:
    """A request body as compact JSON."""
    return json.dumps(body, separators=(",", ":")).encode("utf-8")
