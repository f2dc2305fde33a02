"""An in-memory credpool data plane and a scripted provider, for ``httpx.MockTransport``."""

from __future__ import annotations

import itertools
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple, Union

import httpx

EXPIRES_AT = "2026-11-30T02:00:00.000Z"

_ids = itertools.count(1)


def lease_json(
    entry: str = "aaaaaaaaaaaa",
    generation: int = 1,
    secret: str = "sk-secret-aaaa",
    *,
    label: str = "main",
    provider: str = "openai",
    header_name: str = "authorization",
    kind: str = "api_key",
    base_url: Optional[str] = "https://api.openai.com/v1",
) -> Dict[str, Any]:
    """A lease object ``L`` with a fresh id; ``secret`` goes in ``Bearer …`` for authorization."""
    value = f"Bearer {secret}" if header_name == "authorization" else secret
    return {
        "id": f"{next(_ids):032x}",
        "provider": provider,
        "entry": entry,
        "label": label,
        "generation": generation,
        "kind": kind,
        "base_url": base_url,
        "header": {"name": header_name, "value": value},
        "expires_at": EXPIRES_AT,
    }


def classification(kind: str, status: Optional[int] = 403, reason: Optional[str] = None) -> Dict[str, Any]:
    return {"kind": kind, "status": status, "reason": reason, "reset_at": None}


def answer(
    action: str,
    lease: Optional[Dict[str, Any]] = None,
    kind: str = "auth_expired",
    *,
    status: Optional[int] = 403,
    retry_after_ms: int = 0,
    next_available_at: Optional[str] = None,
) -> Dict[str, Any]:
    """A report answer."""
    return {
        "classification": classification(kind, status),
        "action": action,
        "lease": lease,
        "retry_after_ms": retry_after_ms,
        "next_available_at": next_available_at,
    }


Scripted = Union[Dict[str, Any], Tuple[int, Any], Callable[[Dict[str, Any]], Any]]


@dataclass
class Call:
    method: str
    path: str
    body: Any
    headers: httpx.Headers


@dataclass
class FakePool:
    """A data plane: scripted answers for ``/v1/lease`` and reports, and the live lease ids.

    ``leases`` holds what the next ``POST /v1/lease`` answers: a lease object, or
    ``(status, json)``. When empty, a fresh default lease is handed out. ``reports`` holds
    the next reports' answers the same way (default: a success's answer).
    """

    leases: Deque[Scripted] = field(default_factory=deque)
    reports: Deque[Scripted] = field(default_factory=deque)
    calls: List[Call] = field(default_factory=list)
    live: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    retry_after_header: Optional[str] = None

    def handler(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.calls.append(Call(request.method, request.url.path, body, request.headers))
        path = request.url.path
        if request.method == "GET" and path == "/v1/health":
            return httpx.Response(200, json={"ok": True})
        if request.method == "POST" and path == "/v1/lease":
            scripted = self.leases.popleft() if self.leases else lease_json()
            status, payload = self._resolve(scripted, body)
            if status != 200:
                headers = {"retry-after": self.retry_after_header} if self.retry_after_header else {}
                return httpx.Response(status, json=payload, headers=headers)
            self.live[payload["id"]] = payload
            return httpx.Response(200, json={"lease": payload})
        parts = path.strip("/").split("/")
        if len(parts) >= 3 and parts[:2] == ["v1", "leases"]:
            lease_id = parts[2]
            if lease_id not in self.live:
                return httpx.Response(
                    404, json={"error": {"code": "unknown_lease", "message": "unknown lease"}}
                )
            if request.method == "DELETE" and len(parts) == 3:
                del self.live[lease_id]
                return httpx.Response(200, json={"released": True})
            if request.method == "POST" and parts[3:] == ["report"]:
                del self.live[lease_id]
                if body == {"outcome": "success"}:
                    return httpx.Response(
                        200,
                        json={"action": "released", "classification": None, "lease": None,
                              "next_available_at": None},
                    )
                scripted = self.reports.popleft() if self.reports else answer("give_up", kind="other")
                status, payload = self._resolve(scripted, body)
                if status == 200 and payload.get("lease") is not None:
                    self.live[payload["lease"]["id"]] = payload["lease"]
                return httpx.Response(status, json=payload)
        return httpx.Response(404, json={"error": {"code": "not_found", "message": path}})

    @staticmethod
    def _resolve(scripted: Scripted, body: Any) -> Tuple[int, Any]:
        if callable(scripted):
            scripted = scripted(body)
        if isinstance(scripted, tuple):
            return scripted
        return 200, scripted

    def paths(self) -> List[Tuple[str, str]]:
        return [(c.method, c.path) for c in self.calls]

    def reports_sent(self) -> List[Any]:
        return [c.body for c in self.calls if c.path.endswith("/report")]

    def released(self) -> List[str]:
        return [c.path.split("/")[3] for c in self.calls if c.method == "DELETE"]


@dataclass
class Seen:
    """What the provider received (a copy: the auth flow resends the same request object)."""

    method: str
    url: str
    headers: httpx.Headers
    content: bytes


@dataclass
class FakeProvider:
    """A provider answering by credential: ``answers[credential]`` is a queue of responses
    (status or ``httpx.Response`` factories); an unknown or exhausted credential gets 200."""

    answers: Dict[str, Deque[Union[int, Callable[[], httpx.Response]]]] = field(default_factory=dict)
    seen: List[Seen] = field(default_factory=list)

    def script(self, credential: str, *responses: Union[int, Callable[[], httpx.Response]]) -> None:
        self.answers.setdefault(credential, deque()).extend(responses)

    @staticmethod
    def credential(request: Union[httpx.Request, Seen]) -> str:
        auth = request.headers.get("authorization")
        if auth is not None:
            return str(auth).split(" ", 1)[1]
        return str(request.headers.get("x-api-key", ""))

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(
            Seen(request.method, str(request.url), httpx.Headers(request.headers), request.read())
        )
        queue = self.answers.get(self.credential(request))
        scripted = queue.popleft() if queue else 200
        if callable(scripted):
            return scripted()
        if scripted == 200:
            return httpx.Response(200, json=CHAT_COMPLETION)
        return httpx.Response(
            scripted,
            json={"error": {"code": f"e{scripted}", "message": "scripted failure"}},
            headers={"retry-after": "3"} if scripted == 429 else {},
        )


CHAT_COMPLETION: Dict[str, Any] = {
    "id": "chatcmpl-fake",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "fake-model",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "ok"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}
