"""The LMS side of the wire: authenticated calls with a correlation id, each kept as an `Exchange` that a failed
check can quote (what was sent, what came back).

Why httpx2: it is the project's HTTP client (one client, pooled). Redirects are never followed: a launch's
`joinUrl` is opened by a browser, and the kit only looks at where it points (`Location`), it never enters the
provider. Why both auth modes: Cornerstone sends HTTP Basic per the spec, and its QA mock uses OAuth 2.0 client
credentials (`POST {base}/oauth/token`, then `Bearer`); a connector may offer either.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx2

BODY_QUOTE = 300  # characters of a body quoted in a failure: enough to see the error, short enough for a table


@dataclass(frozen=True)
class Target:
    """Where the connector under test listens and how the LMS proves who it is."""

    base_url: str
    username: str | None = None
    password: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    timeout: float = 30.0

    def __post_init__(self) -> None:
        basic = self.username is not None and self.password is not None
        oauth = self.client_id is not None and self.client_secret is not None
        if not (basic or oauth):
            raise ValueError("give --username and --password (HTTP Basic) or --client-id and --client-secret "
                             "(OAuth client credentials) for the connector under test")


@dataclass
class Exchange:
    """One request and its answer, short enough to print."""

    method: str
    path: str
    status: int
    headers: httpx2.Headers
    text: str
    sent: str = ""
    correlation_id: str | None = None
    _json: Any = field(default=None, repr=False)
    _parsed: bool = field(default=False, repr=False)

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        if not self._parsed:
            self._parsed = True
            try:
                self._json = json.loads(self.text)
            except ValueError:
                self._json = None
        return self._json

    def summary(self) -> str:
        sent = f" {self.sent[:120]}" if self.sent else ""
        return f"{self.method} {self.path}{sent} -> {self.status} {self.text[:BODY_QUOTE]}"


def b64_email(email: str, *, url_safe: bool = False) -> str:
    """An email as Cornerstone puts it in a launch path: standard base64, or the URL-safe alphabet unpadded."""
    raw = email.encode()
    if url_safe:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return base64.b64encode(raw).decode()


class LmsDriver:
    """Calls the connector as Cornerstone does. Every call carries a fresh `correlationId` unless one is given."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.base = target.base_url.rstrip("/")
        self.http = httpx2.Client(timeout=target.timeout, follow_redirects=False)
        self._bearer: str | None = None

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> LmsDriver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def uses_oauth(self) -> bool:
        return self.target.username is None or self.target.password is None

    def token(self, *, client_id: str | None = None, client_secret: str | None = None) -> Exchange:
        """`POST /oauth/token` with client credentials in the form body (as Cornerstone's mock sends them)."""
        form = {"grant_type": "client_credentials", "client_id": client_id or self.target.client_id or "",
                "client_secret": client_secret or self.target.client_secret or ""}
        response = self.http.post(self.base + "/oauth/token", data=form)
        return Exchange("POST", "/oauth/token", response.status_code, response.headers, response.text,
                        sent="grant_type=client_credentials")

    def authorization(self) -> str:
        if not self.uses_oauth:
            pair = f"{self.target.username}:{self.target.password}".encode()
            return "Basic " + base64.b64encode(pair).decode()
        if self._bearer is None:
            answer = self.token()
            body = answer.json()
            if answer.status != 200 or not isinstance(body, dict) or not body.get("access_token"):
                raise ConnectionError(f"could not get an OAuth token: {answer.summary()}")
            self._bearer = str(body["access_token"])
        return f"Bearer {self._bearer}"

    def call(
        self, method: str, path: str, *, body: Any = None, content: bytes | None = None,
        headers: dict[str, str] | None = None, authorization: str | None = "default",
        correlation_id: str | None = "default", content_type: str = "application/json",
    ) -> Exchange:
        """One LMS call. `authorization=None` sends none; a string sends that header instead of the target's.
        `correlation_id=None` sends no correlationId header."""
        sent_headers: dict[str, str] = {}
        if authorization == "default":
            sent_headers["Authorization"] = self.authorization()
        elif authorization is not None:
            sent_headers["Authorization"] = authorization
        cid = f"vbconf-{uuid.uuid4().hex[:16]}" if correlation_id == "default" else correlation_id
        if cid is not None:
            sent_headers["correlationId"] = cid
        sent = ""
        if body is not None:
            content = json.dumps(body).encode()
            sent = content.decode()
        elif content is not None:
            sent = f"<{len(content)} bytes>"
        if content is not None:
            sent_headers["Content-Type"] = content_type
        sent_headers.update(headers or {})
        try:
            response = self.http.request(method, self.base + path, content=content, headers=sent_headers)
        except httpx2.HTTPError as exc:
            return Exchange(method, path, 0, httpx2.Headers(), f"no answer: {exc.__class__.__name__}: {exc}",
                            sent=sent, correlation_id=cid)
        return Exchange(method, path, response.status_code, response.headers, response.text, sent=sent,
                        correlation_id=cid)

    def open_link(self, url: str) -> Exchange:
        """A browser's first step on a launch link, without following it: the kit wants the `Location`."""
        try:
            response = self.http.get(url)
        except httpx2.HTTPError as exc:
            return Exchange("GET", url, 0, httpx2.Headers(), f"no answer: {exc}")
        return Exchange("GET", url, response.status_code, response.headers, response.text[:2000])
