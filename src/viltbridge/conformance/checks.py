"""The cases: each a named function with a dotted id (`session.multi_part`) that plays one part of Cornerstone's
contract (`cornerstone-vilt-contract.md` in the shared docs) and raises `CaseFailed` with what was sent, what came
back and what was expected.

Choices, and why:
- Every case makes its own SessionIds from the run id, so cases do not depend on each other and a rerun against the
  same server never meets the last run's sessions. Instructors are the exception: adding them is what the LMS does
  once per vendor, so `Context.instructors_added` does it once per run (after the scenario's `prepare_host`).
- Sessions start a few minutes from now (the server under test uses the real clock) so launches are inside any
  launch window of 15 minutes or more, and end an hour later; attendance is then provisional, which is documented.
- Tags say where a rule comes from: `spec`/`csod` (published by Cornerstone), `decision` (the contract document's
  stated choice where Cornerstone says nothing, e.g. PUT on an unknown SessionId creates it), `hostile` (input an
  attacker or a broken proxy sends: never a 5xx, always an envelope, nothing reflected into headers), `scenario`
  (needs `--provider-scenario`), `oauth` (needs OAuth client credentials), `extra` (viltbridge's own behaviour,
  beyond the contract: off unless asked for). A case whose option is missing is left out unless named in --only
  (then it is reported skipped), so a plain run's exit code 0 means every case it could run passed.
- Hostile cases accept any documented refusal (4xx with an error envelope) or a success; what fails is a 5xx, a
  non-envelope, a dropped connection or an injected header.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from viltbridge.conformance.driver import Exchange, LmsDriver, b64_email
from viltbridge.conformance.scenario import Attendee, Scenario

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?(Z|[+-]\d{2}:?\d{2})$")
ERROR_STATUSES = {"ValidationError", "SystemError", "PartialSuccess"}
STAY_MINUTES = 50  # of a 60-minute class: well above any sensible "attended" threshold
SHORT_MINUTES = 5  # well below it


class CaseFailed(Exception):
    """A contract rule was broken; the message says what was expected and quotes the exchange."""


class CaseSkipped(Exception):
    """The case cannot run here (no OAuth credentials, no scenario); the message says why."""


@dataclass
class Context:
    """What every case gets: the LMS driver, the people to use, this run's id and the scenario hook."""

    driver: LmsDriver
    instructors: list[str]
    learners: list[str]
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    scenario: Scenario | None = None
    attendance_timeout: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    _instructors_added: bool = False

    @property
    def host(self) -> str:
        return self.instructors[0]

    def session_id(self, name: str) -> str:
        return f"vbconf-{self.run_id}-{name}"

    def instructors_added(self) -> None:
        """The vendor's instructors, added once per run (and prepared at the provider first, with a scenario)."""
        if self._instructors_added:
            return
        for email in self.instructors:
            if self.scenario is not None:
                self.scenario.prepare_host(email)
            first, _, last = email.partition("@")[0].partition(".")
            answer = self.driver.call("POST", "/instructor", body={
                "Email": email, "FirstName": first.title() or "Conformance", "LastName": last.title() or "Kit"})
            expect_success(answer, f"adding instructor {email}")
        self._instructors_added = True

    def session_body(self, session_id: str, *, start_in_minutes: int = 5, minutes: int = 60,
                     camel: bool = False, **extra: Any) -> dict[str, Any]:
        """A SessionRequest as Cornerstone sends it: PascalCase (the spec) or camelCase (newer payloads)."""
        begin = (datetime.now(UTC) + timedelta(minutes=start_in_minutes)).replace(second=0, microsecond=0)
        body: dict[str, Any] = {
            "SessionId": session_id, "CreatorEmail": "conformance.admin@example.com",
            "Title": f"Conformance {session_id[-24:]}", "Description": "Created by viltbridge conformance",
            "DateBegin": f"{begin:%Y-%m-%dT%H:%M:%S}",
            "DateEnd": f"{begin + timedelta(minutes=minutes):%Y-%m-%dT%H:%M:%S}",
            "TimeZone": {"UTCOffset": "-05:00"}, "InstructorEmails": self.host,
        }
        body.update(extra)
        return camel_cased(body) if camel else body

    def scheduled(self, name: str, **changes: Any) -> tuple[str, dict[str, Any]]:
        """A new session of this run, created and checked; its id and the body sent."""
        self.instructors_added()
        session_id = self.session_id(name)
        body = self.session_body(session_id, **changes)
        expect_success(self.driver.call("POST", "/session", body=body), f"creating session {session_id}")
        return session_id, body

    def launch(self, session_id: str, email: str, *, url_safe: bool = False) -> Exchange:
        return self.driver.call("GET", f"/session/{session_id}/user/{b64_email(email, url_safe=url_safe)}/url")


def camel_cased(value: Any) -> Any:
    if isinstance(value, dict):
        return {key[:1].lower() + key[1:]: camel_cased(item) for key, item in value.items()}
    if isinstance(value, list):
        return [camel_cased(item) for item in value]
    return value


# --- expectations --------------------------------------------------------------------------------------------


def _fail(what: str, answer: Exchange, expected: str) -> CaseFailed:
    return CaseFailed(f"{what}: expected {expected}; got {answer.summary()}")


def expect_success(answer: Exchange, what: str, *, echo: bool = True) -> dict[str, Any]:
    """200 with `status: Success`, the correlationId sent (unless `echo` is off), and a timestamp."""
    body = answer.json()
    if answer.status != 200 or not isinstance(body, dict) or body.get("status") != "Success":
        raise _fail(what, answer, '200 with {"status": "Success", ...}')
    if echo and answer.correlation_id is not None and body.get("correlationId") != answer.correlation_id:
        raise _fail(what, answer, f"correlationId {answer.correlation_id!r} echoed in the body")
    if not isinstance(body.get("timestamp"), str) or not TIMESTAMP.match(body["timestamp"]):
        raise _fail(what, answer, "a timestamp like 2026-01-31T14:00:00.000+00:00")
    return body


def expect_error(answer: Exchange, what: str, codes: Iterable[int], *, echo: bool = True) -> dict[str, Any]:
    """A non-200 status among `codes`, in the error envelope: status word, error.code equal to the HTTP status,
    a message for a person, and the correlationId sent (unless `echo` is off: a connector may clean a hostile
    one)."""
    allowed = sorted(set(codes))
    body = answer.json()
    if answer.status not in allowed:
        raise _fail(what, answer, f"HTTP {'/'.join(map(str, allowed))} with an error envelope")
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        raise _fail(what, answer, 'an error envelope {"status", "correlationId", "timestamp", "error": {...}}')
    if body.get("status") not in ERROR_STATUSES:
        raise _fail(what, answer, f"status one of {', '.join(sorted(ERROR_STATUSES))}")
    if body["error"].get("code") != answer.status:
        raise _fail(what, answer, f"error.code equal to the HTTP status {answer.status}")
    message = body["error"].get("message")
    if not isinstance(message, str) or not message.strip():
        raise _fail(what, answer, "an error.message saying what happened and what to do")
    if echo and answer.correlation_id is not None and body.get("correlationId") != answer.correlation_id:
        raise _fail(what, answer, f"correlationId {answer.correlation_id!r} echoed in the body")
    return body


def expect_refusal_or_success(answer: Exchange, what: str) -> None:
    """What a hostile input may get: a success or a documented 4xx refusal — never a 5xx or a bare body."""
    if answer.status == 200:
        expect_success(answer, what)
        return
    expect_error(answer, what, range(400, 500))


def join_url(answer: Exchange, what: str) -> str:
    body = expect_success(answer, what)
    url = (body.get("data") or {}).get("joinUrl") if isinstance(body.get("data"), dict) else None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise _fail(what, answer, "data.joinUrl, an absolute http(s) URL")
    return url


def roster(answer: Exchange, what: str) -> list[str]:
    body = expect_success(answer, what)
    data = body.get("data")
    attendees = data.get("attendees") if isinstance(data, dict) else None
    if not isinstance(attendees, list) or not all(isinstance(a, dict) and isinstance(a.get("email"), str)
                                                    for a in attendees):
        raise _fail(what, answer, 'data.attendees, a list of {"email": ...}')
    return [a["email"].strip().lower() for a in attendees]


# --- the registry --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    title: str
    run: Callable[[Context], str | None]
    tags: frozenset[str]


CASES: list[Case] = []


def case(case_id: str, title: str, *tags: str) -> Callable[[Callable[[Context], str | None]],
                                                          Callable[[Context], str | None]]:
    def register(function: Callable[[Context], str | None]) -> Callable[[Context], str | None]:
        if any(existing.id == case_id for existing in CASES):
            raise ValueError(f"two conformance cases with the id {case_id}")
        CASES.append(Case(case_id, title, function, frozenset(tags)))
        return function

    return register


NEEDS = ("scenario", "oauth")  # tags of cases that need an option: --provider-scenario, --client-id/--client-secret


def select(cases: Iterable[Case], only: Iterable[str] = (), skip: Iterable[str] = (), *,
           extras: bool = False, available: Iterable[str] = NEEDS) -> list[Case]:
    """Cases by id or dotted prefix (`session` matches `session.create`, not `sessions.x`). `extra` cases only
    with `extras`, and cases needing an option that was not given (`available` lacks their tag) only when named in
    `only`: a default run selects what it can run, so its exit code means something."""
    def matches(case_id: str, pattern: str) -> bool:
        return case_id == pattern or case_id.startswith(pattern.rstrip(".") + ".")

    only, skip, available = [p for p in only if p], [p for p in skip if p], set(available)
    chosen = []
    for item in cases:
        named = any(matches(item.id, p) for p in only)
        if only and not named:
            continue
        if "extra" in item.tags and not (extras or named):
            continue
        if any(need in item.tags and need not in available for need in NEEDS) and not named:
            continue
        if any(matches(item.id, p) for p in skip):
            continue
        chosen.append(item)
    return chosen


def unknown_patterns(patterns: Iterable[str], cases: Iterable[Case] = CASES) -> list[str]:
    """Patterns that select nothing (a typo in --only/--skip should be said, not silently run nothing)."""
    ids = [item.id for item in cases]
    return [p for p in patterns if p and not any(i == p or i.startswith(p.rstrip(".") + ".") for i in ids)]


# --- auth ----------------------------------------------------------------------------------------------------


@case("auth.missing", "A call without credentials is refused with 401", "spec")
def auth_missing(ctx: Context) -> str | None:
    expect_error(ctx.driver.call("GET", f"/session/{ctx.session_id('auth')}/attendees", authorization=None),
                 "no Authorization header", [401])
    return None


@case("auth.wrong_password", "Wrong credentials are refused with 401", "spec")
def auth_wrong_password(ctx: Context) -> str | None:
    user = ctx.driver.target.username or ctx.driver.target.client_id or "x"
    wrong = "Basic " + b64_email(f"{user}:not-the-password-{ctx.run_id}")
    expect_error(ctx.driver.call("GET", f"/session/{ctx.session_id('auth')}/attendees", authorization=wrong),
                 "a wrong password", [401])
    expect_error(ctx.driver.call("GET", f"/session/{ctx.session_id('auth')}/attendees",
                                 authorization="Bearer not-a-token"), "an invalid bearer token", [401])
    return None


@case("auth.oauth", "OAuth client credentials give a bearer token that works; a wrong secret gets 401", "csod",
      "oauth")
def auth_oauth(ctx: Context) -> str | None:
    target = ctx.driver.target
    if target.client_id is None or target.client_secret is None:
        raise CaseSkipped("no --client-id/--client-secret given")
    answer = ctx.driver.token()
    body = answer.json()
    if answer.status != 200 or not isinstance(body, dict) or not body.get("access_token") \
            or str(body.get("token_type", "")).lower() != "bearer":
        raise _fail("POST /oauth/token", answer, '200 with {"access_token", "token_type": "Bearer", ...}')
    expect_error(ctx.driver.call("GET", f"/session/{ctx.session_id('oauth')}/attendees",
                                 authorization=f"Bearer {body['access_token']}"),
                 "a call with the token (an unknown session: 404 means the token was accepted)", [404])
    wrong = ctx.driver.token(client_secret=f"wrong-{ctx.run_id}")
    if wrong.status not in (400, 401):
        raise _fail("POST /oauth/token with a wrong secret", wrong, "401 invalid_client (RFC 6749 5.2)")
    return None


# --- envelopes -----------------------------------------------------------------------------------------------


@case("envelope.correlation_id", "correlationId sent in the header comes back in the body, success and error",
      "spec")
def envelope_correlation_id(ctx: Context) -> str | None:
    ctx.instructors_added()
    cid = f"corr-{ctx.run_id}-Abc_123"
    expect_success(ctx.driver.call("POST", "/instructor", correlation_id=cid, body={
        "Email": ctx.host, "FirstName": "Conformance", "LastName": "Kit"}), "POST /instructor")
    expect_error(ctx.driver.call("GET", f"/session/{ctx.session_id('nope')}/attendees", correlation_id=cid),
                 "attendance of an unknown session", [404])
    return None


@case("envelope.debug_header", "A call with `debug: true` (Cornerstone troubleshooting) is answered as usual", "spec")
def envelope_debug_header(ctx: Context) -> str | None:
    session_id, _ = ctx.scheduled("debug")
    join_url(ctx.driver.call("GET", f"/session/{session_id}/user/{b64_email(ctx.learners[0])}/url",
                             headers={"debug": "true"}), "a launch with debug: true")
    return None


@case("envelope.error_shape", "Errors: status word, error.code = HTTP status, a message", "spec")
def envelope_error_shape(ctx: Context) -> str | None:
    body = ctx.session_body(ctx.session_id("noTitle"))
    del body["Title"]
    expect_error(ctx.driver.call("POST", "/session", body=body), "a session without Title", [400])
    return None


# --- instructors ---------------------------------------------------------------------------------------------


@case("instructor.add", "AddInstructor (PascalCase) succeeds", "spec")
def instructor_add(ctx: Context) -> str | None:
    ctx.instructors_added()
    return None


@case("instructor.add_camel_case", "AddInstructor with camelCase keys succeeds", "decision")
def instructor_add_camel_case(ctx: Context) -> str | None:
    ctx.instructors_added()
    expect_success(ctx.driver.call("POST", "/instructor", body={
        "email": ctx.host, "firstName": "Conformance", "lastName": "Kit"}), "POST /instructor in camelCase")
    return None


@case("instructor.add_again", "Adding a known instructor again succeeds (retries are harmless)", "decision")
def instructor_add_again(ctx: Context) -> str | None:
    ctx.instructors_added()
    for attempt in (1, 2):
        expect_success(ctx.driver.call("POST", "/instructor", body={
            "Email": ctx.host, "FirstName": "Conformance", "LastName": "Kit"}), f"POST /instructor (#{attempt})")
    return None


@case("instructor.update", "UpdateInstructor (names, IsActive) succeeds", "spec")
def instructor_update(ctx: Context) -> str | None:
    ctx.instructors_added()
    expect_success(ctx.driver.call("PUT", "/instructor", body={
        "OldEmail": ctx.host, "NewEmail": ctx.host, "FirstName": "Renamed", "LastName": "Instructor",
        "IsActive": True}), "PUT /instructor")
    expect_success(ctx.driver.call("PUT", "/instructor", body={
        "oldEmail": ctx.host, "newEmail": ctx.host, "firstName": "Conformance", "lastName": "Kit"}),
        "PUT /instructor in camelCase")
    return None


@case("instructor.missing_field", "AddInstructor without LastName is a 400 envelope", "spec")
def instructor_missing_field(ctx: Context) -> str | None:
    expect_error(ctx.driver.call("POST", "/instructor", body={"Email": ctx.host, "FirstName": "Only"}),
                 "POST /instructor without LastName", [400])
    return None


# --- sessions ------------------------------------------------------------------------------------------------


@case("session.create", "CreateSession (PascalCase), then a learner can launch", "spec")
def session_create(ctx: Context) -> str | None:
    session_id, _ = ctx.scheduled("create")
    join_url(ctx.launch(session_id, ctx.learners[0]), "a learner's launch")
    return None


@case("session.create_camel_case", "CreateSession with camelCase keys, then a learner can launch", "csod")
def session_create_camel_case(ctx: Context) -> str | None:
    session_id, _ = ctx.scheduled("camel", camel=True)
    join_url(ctx.launch(session_id, ctx.learners[0]), "a learner's launch")
    return None


@case("session.create_retry", "The same CreateSession twice (a retry) succeeds and leaves one session", "decision")
def session_create_retry(ctx: Context) -> str | None:
    session_id, body = ctx.scheduled("retry")
    expect_success(ctx.driver.call("POST", "/session", body=body), "the same POST /session again")
    join_url(ctx.launch(session_id, ctx.learners[0]), "a learner's launch after the retry")
    return None


@case("session.concurrent_retry", "The same CreateSession three times at once (a proxy's retries) all succeed",
      "decision")
def session_concurrent_retry(ctx: Context) -> str | None:
    from concurrent.futures import ThreadPoolExecutor

    ctx.instructors_added()
    session_id = ctx.session_id("race")
    body = ctx.session_body(session_id)
    with ThreadPoolExecutor(max_workers=3) as pool:
        answers = list(pool.map(lambda _: ctx.driver.call("POST", "/session", body=body), range(3)))
    for n, answer in enumerate(answers, 1):
        expect_success(answer, f"concurrent POST /session #{n}")
    join_url(ctx.launch(session_id, ctx.learners[0]), "a learner's launch after the concurrent creates")
    return None


@case("session.update", "UpdateSession (new title and time) succeeds; launches keep working", "spec")
def session_update(ctx: Context) -> str | None:
    session_id, _ = ctx.scheduled("update")
    before = join_url(ctx.launch(session_id, ctx.learners[0]), "a learner's launch before the edit")
    changed = ctx.session_body(session_id, start_in_minutes=10, minutes=75, Title=f"Renamed {ctx.run_id}")
    expect_success(ctx.driver.call("PUT", f"/session/{session_id}", body=changed), "PUT /session/{id}")
    join_url(ctx.launch(session_id, ctx.learners[0]), "a learner's launch after the edit")
    opened = ctx.driver.open_link(before)
    if opened.status >= 400 or opened.status == 0:
        raise _fail("the joinUrl handed out before the edit", opened, "a link that still opens (2xx or 3xx)")
    return None


@case("session.update_unknown_creates", "UpdateSession of an unknown SessionId creates it", "decision")
def session_update_unknown_creates(ctx: Context) -> str | None:
    ctx.instructors_added()
    session_id = ctx.session_id("putNew")
    expect_success(ctx.driver.call("PUT", f"/session/{session_id}", body=ctx.session_body(session_id)),
                   "PUT /session/{id} for a new SessionId")
    join_url(ctx.launch(session_id, ctx.learners[0]), "a learner's launch")
    return None


@case("session.multi_part", "Two parts sharing LoId: each saved, launched and cancelled on its own", "csod")
def session_multi_part(ctx: Context) -> str | None:
    lo_id = f"vbconf-lo-{ctx.run_id}"
    first, _ = ctx.scheduled("part1", LoId=lo_id)
    second, _ = ctx.scheduled("part2", LoId=lo_id, start_in_minutes=24 * 60 + 5)
    join_url(ctx.launch(first, ctx.learners[0]), "a learner's launch of part 1")
    expect_success(ctx.driver.call("DELETE", f"/session/{second}?LoId={lo_id}"), "cancelling part 2")
    join_url(ctx.launch(first, ctx.learners[0]), "a learner's launch of part 1 after part 2 was cancelled")
    launched = ctx.launch(second, ctx.learners[0])
    if launched.status == 200:
        raise _fail("a learner's launch of the cancelled part 2", launched, "a 4xx saying it was cancelled")
    expect_error(launched, "a learner's launch of the cancelled part 2", range(400, 500))
    return None


@case("session.invalid_dates", "DateEnd before DateBegin is a 400 envelope", "spec")
def session_invalid_dates(ctx: Context) -> str | None:
    body = ctx.session_body(ctx.session_id("badDates"))
    body["DateBegin"], body["DateEnd"] = body["DateEnd"], body["DateBegin"]
    expect_error(ctx.driver.call("POST", "/session", body=body), "a session ending before it begins", [400])
    return None


@case("session.time_formats", "DateBegin with Z or fractions, and UTCOffset in the forms Cornerstone sends; a "
      "nonsense offset is a 400", "decision")
def session_time_formats(ctx: Context) -> str | None:
    ctx.instructors_added()
    for n, offset in enumerate(("-0500", "-5", "UTC-05:00", "GMT+5:30", "(UTC-05:00) Eastern Time (US & Canada)")):
        session_id = ctx.session_id(f"tz{n}")
        body = ctx.session_body(session_id, TimeZone={"UTCOffset": offset})
        if n == 0:
            body["DateBegin"] += ".000Z"
            body["DateEnd"] += "+00:00"
        expect_success(ctx.driver.call("POST", "/session", body=body), f"UTCOffset {offset!r}")
    body = ctx.session_body(ctx.session_id("tzBad"), TimeZone={"UTCOffset": "teatime"})
    expect_error(ctx.driver.call("POST", "/session", body=body), "UTCOffset 'teatime'", [400])
    return None


@case("session.instructor_list_formats", "InstructorEmails as a delimited string or a JSON array", "csod")
def session_instructor_list_formats(ctx: Context) -> str | None:
    ctx.instructors_added()
    joined = ctx.instructors[:2]
    for n, value in enumerate(("; ".join(joined) + ";", " , ".join(joined), joined)):
        session_id = ctx.session_id(f"instr{n}")
        answer = ctx.driver.call("POST", "/session", body=ctx.session_body(session_id, InstructorEmails=value))
        expect_success(answer, f"InstructorEmails {value!r}")
    return None


@case("session.extended_options", "GetExtendedOptions answers a tree of nodes; choices are accepted", "csod")
def session_extended_options(ctx: Context) -> str | None:
    session_id, body = ctx.scheduled("options")
    answer = ctx.driver.call("GET", f"/session/{session_id}/extendedoptions")
    envelope = expect_success(answer, "GET /session/{id}/extendedoptions")
    data = envelope.get("data")
    options = data.get("extendedOptions") if isinstance(data, dict) else None
    if not isinstance(options, list):
        raise _fail("GET /session/{id}/extendedoptions", answer, "data.extendedOptions, a list")
    boxes: list[dict[str, Any]] = []

    def walk(nodes: list[Any]) -> None:
        for node in nodes:
            if not isinstance(node, dict) or node.get("Type") not in ("Label", "CheckBox") \
                    or not isinstance(node.get("Id"), str):
                raise _fail("an extended option", answer, 'nodes with "Type" Label|CheckBox and a string "Id"')
            if node["Type"] == "CheckBox":
                boxes.append(node)
            walk(node.get("ChildExtendedOptions") or [])

    walk(options)
    if not boxes:
        return "no extended options offered"
    choices = [{"Id": box["Id"], "IsChecked": not box.get("IsChecked")} for box in boxes]
    expect_success(ctx.driver.call("PUT", f"/session/{session_id}", body={**body, "ExtendedOptions": choices}),
                   "PUT /session/{id} with ExtendedOptions")
    return f"{len(boxes)} option(s) offered"


# --- launches ------------------------------------------------------------------------------------------------


@case("launch.learner", "A learner's launch (standard base64 email) gives a joinUrl that opens", "spec")
def launch_learner(ctx: Context) -> str | None:
    session_id, _ = ctx.scheduled("launch")
    url = join_url(ctx.launch(session_id, ctx.learners[0]), "a learner's launch")
    opened = ctx.driver.open_link(url)
    if opened.status >= 400 or opened.status == 0:
        raise _fail("opening the joinUrl", opened, "a page or a redirect (2xx or 3xx)")
    return None


def awkward_email(run_id: str) -> str:
    """An email whose standard base64 holds `+` or `/` and padding, so the URL-safe form really differs."""
    for n in range(1000):
        email = f"l{n}.{run_id}?~@example.com"
        encoded = b64_email(email)
        if ("+" in encoded or "/" in encoded) and encoded.endswith("="):
            return email
    raise AssertionError("no awkward email found")  # 1000 tries cannot all miss


@case("launch.url_safe_base64", "Launch with the email in URL-safe base64 without padding, and with / or +",
      "spec")
def launch_url_safe_base64(ctx: Context) -> str | None:
    session_id, _ = ctx.scheduled("urlsafe")
    email = awkward_email(ctx.run_id)
    join_url(ctx.launch(session_id, email, url_safe=True), f"launch for {email} in URL-safe base64")
    join_url(ctx.launch(session_id, email), f"launch for {email} in standard base64 (holds / or +)")
    escaped = b64_email(email).replace("/", "%2F").replace("+", "%2B").replace("=", "%3D")
    join_url(ctx.driver.call("GET", f"/session/{session_id}/user/{escaped}/url"),
             "launch with the base64 percent-encoded")
    return None


@case("launch.host", "The instructor's launch gives a joinUrl", "spec")
def launch_host(ctx: Context) -> str | None:
    session_id, _ = ctx.scheduled("host")
    join_url(ctx.launch(session_id, ctx.host), "the instructor's launch")
    join_url(ctx.launch(session_id, f"  {ctx.host.upper()} "), "the instructor's launch, email in other case")
    return None


@case("launch.unknown_session", "Launch for an unknown SessionId is a 404 envelope", "spec")
def launch_unknown_session(ctx: Context) -> str | None:
    expect_error(ctx.launch(ctx.session_id("unknown"), ctx.learners[0]), "launch of an unknown session", [404])
    return None


@case("launch.bad_email", "A path segment that is not a base64 email is a 400 envelope", "spec")
def launch_bad_email(ctx: Context) -> str | None:
    session_id, _ = ctx.scheduled("badEmail")
    expect_error(ctx.driver.call("GET", f"/session/{session_id}/user/{b64_email('not an email')}/url"),
                 "launch with a base64 non-email", [400])
    expect_error(ctx.driver.call("GET", f"/session/{session_id}/user/!!!notbase64!!!/url"),
                 "launch with a segment that is not base64", [400])
    return None


# --- cancellation --------------------------------------------------------------------------------------------


@case("cancel.session", "CancelSession succeeds, again too; then launches are refused", "csod")
def cancel_session(ctx: Context) -> str | None:
    session_id, _ = ctx.scheduled("cancel")
    expect_success(ctx.driver.call("DELETE", f"/session/{session_id}"), "DELETE /session/{id}")
    expect_success(ctx.driver.call("DELETE", f"/session/{session_id}"), "DELETE /session/{id} again")
    launched = ctx.launch(session_id, ctx.learners[0])
    expect_error(launched, "a learner's launch of a cancelled session", range(400, 500))
    return None


@case("cancel.unknown", "CancelSession of an unknown SessionId succeeds (idempotent)", "decision")
def cancel_unknown(ctx: Context) -> str | None:
    expect_success(ctx.driver.call("DELETE", f"/session/{ctx.session_id('neverMade')}"), "DELETE unknown session")
    return None


# --- attendance ----------------------------------------------------------------------------------------------


@case("attendance.shape", "GetAttendees before the class: a list, or an error with Retry-After", "spec")
def attendance_shape(ctx: Context) -> str | None:
    session_id, _ = ctx.scheduled("attendance")
    answer = ctx.driver.call("GET", f"/session/{session_id}/attendees")
    if answer.status == 200:
        return f"{len(roster(answer, 'GET attendees'))} attendee(s) so far"
    expect_error(answer, "GET attendees before anything is known", range(400, 600))
    if not answer.headers.get("retry-after"):
        raise _fail("GET attendees before anything is known", answer, "a Retry-After header saying when to ask")
    return f"not ready: {answer.status}, Retry-After {answer.headers['retry-after']}"


@case("attendance.unknown_session", "GetAttendees of an unknown SessionId is a 404 envelope", "spec")
def attendance_unknown_session(ctx: Context) -> str | None:
    expect_error(ctx.driver.call("GET", f"/session/{ctx.session_id('unknown')}/attendees"),
                 "attendance of an unknown session", [404])
    return None


# --- hostile input -------------------------------------------------------------------------------------------


@case("hostile.oversized_body", "A 5 MB session body: refused with an envelope (or accepted), never a 5xx",
      "hostile")
def hostile_oversized_body(ctx: Context) -> str | None:
    body = ctx.session_body(ctx.session_id("big"), Description="x" * 5_000_000)
    answer = ctx.driver.call("POST", "/session", body=body)
    expect_refusal_or_success(answer, "a 5 MB POST /session")
    return f"answered {answer.status}"


@case("hostile.deep_json", "JSON nested 100 000 deep: a 400 envelope, never a 5xx", "hostile")
def hostile_deep_json(ctx: Context) -> str | None:
    depth = 100_000
    content = (b'{"SessionId": "' + ctx.session_id("deep").encode() + b'", "Title": '
               + b"[" * depth + b"]" * depth + b"}")
    expect_error(ctx.driver.call("POST", "/session", content=content), "deeply nested JSON", range(400, 500))
    deep_object = b'{"a":' * depth + b"1" + b"}" * depth
    expect_error(ctx.driver.call("POST", "/instructor", content=deep_object), "a deeply nested object",
                 range(400, 500))
    return None


@case("hostile.wide_encodings", "JSON in UTF-16 and UTF-32 (deep or not): a 4xx envelope, nothing saved",
      "hostile")
def hostile_wide_encodings(ctx: Context) -> str | None:
    for codec in ("utf-16-le", "utf-16-be", "utf-16", "utf-32"):
        session = json.dumps(ctx.session_body(ctx.session_id(f"wide-{codec}"))).encode(codec)
        expect_error(ctx.driver.call("POST", "/session", content=session), f"a session in {codec.upper()}",
                     range(400, 500))
        deep = ("[" * 5_000 + "]" * 5_000).encode(codec)
        expect_error(ctx.driver.call("POST", "/session", content=deep), f"JSON nested 5,000 deep in {codec.upper()}",
                     range(400, 500))
    return None


@case("hostile.escaped_quotes", "Anonymous: 64 KB of escaped quotes then brackets answered at once with a 4xx",
      "hostile")
def hostile_escaped_quotes(ctx: Context) -> str | None:
    content = b'"' + b'\\"' * 32_000 + b"[" * 65  # a backtracking body scanner spends seconds to minutes on this
    started = time.monotonic()
    answer = ctx.driver.call("POST", "/session", content=content, authorization=None)
    elapsed = time.monotonic() - started
    if not 400 <= answer.status < 500:
        raise _fail("an anonymous POST /session of escaped quotes", answer, "a 4xx")
    if elapsed > 2:
        raise _fail("an anonymous POST /session of escaped quotes", answer,
                    f"an answer within 2 s (took {elapsed:.1f} s)")
    return f"answered {answer.status} in {elapsed * 1000:.0f} ms"


@case("hostile.invalid_utf8", "A body that is not UTF-8: a 400 envelope", "hostile")
def hostile_invalid_utf8(ctx: Context) -> str | None:
    content = b'{"Email": "a\xff\xfe@example.com", "FirstName": "\xc3\x28", "LastName": "x"}'
    expect_error(ctx.driver.call("POST", "/instructor", content=content), "a body with invalid UTF-8",
                 range(400, 500))
    expect_error(ctx.driver.call("POST", "/instructor", content=b"Email=a@example.com"), "a body that is not JSON",
                 range(400, 500))
    return None


@case("hostile.header_injection", "correlationId with CR/LF, encoded or raw: nothing injected into headers",
      "hostile")
def hostile_header_injection(ctx: Context) -> str | None:
    for cid in (f"inj-{ctx.run_id}%0d%0aX-Injected:%20yes", f"inj-{ctx.run_id}\\r\\nX-Injected: yes",
                f"inj-{ctx.run_id} X-Injected: yes\t<script>"):
        answer = ctx.driver.call("GET", f"/session/{ctx.session_id('inj')}/attendees", correlation_id=cid)
        if "x-injected" in {name.lower() for name in answer.headers}:
            raise _fail(f"correlationId {cid!r}", answer, "no X-Injected response header")
        if any("\r" in value or "\n" in value for value in answer.headers.values()):
            raise _fail(f"correlationId {cid!r}", answer, "no CR or LF in any response header")
        expect_error(answer, f"correlationId {cid!r} on an unknown session", [400, 404], echo=False)
    raw = raw_request(ctx.driver.base, f"/session/{ctx.session_id('inj')}/attendees",
                      [("Authorization", ctx.driver.authorization()),
                       ("correlationId", f"inj-{ctx.run_id}\rX-Injected: yes")])
    if b"x-injected" in raw.lower().split(b"\r\n\r\n", 1)[0]:
        raise CaseFailed(f"a correlationId holding a bare CR was reflected into the response headers: {raw[:300]!r}")
    if raw.startswith(b"HTTP/1.1 5"):
        raise CaseFailed(f"a correlationId holding a bare CR caused a 5xx: {raw[:300]!r}")
    return None


def raw_request(base_url: str, path: str, headers: list[tuple[str, str]]) -> bytes:
    """An HTTP/1.1 GET written byte for byte (clients refuse to send CR inside a header value)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    if parts.scheme != "http":
        return b""  # over TLS the bare-CR probe is skipped: a raw TLS socket is not worth a dependency here
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lines = [f"GET {parts.path.rstrip('/')}{path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@case("hostile.path_traversal", "SessionId with ../ and encoded slashes: 4xx envelopes, never a 5xx", "hostile")
def hostile_path_traversal(ctx: Context) -> str | None:
    email = b64_email(ctx.learners[0])
    for session_id in ("..%2F..%2Fetc%2Fpasswd", "%2e%2e", "..%5C..%5Cwindows", "a%00b"):
        expect_error(ctx.driver.call("GET", f"/session/{session_id}/attendees"),
                     f"attendance of SessionId {session_id}", range(400, 500))
        expect_error(ctx.driver.call("GET", f"/session/{session_id}/user/{email}/url"),
                     f"launch of SessionId {session_id}", range(400, 500))
        expect_refusal_or_success(ctx.driver.call("DELETE", f"/session/{session_id}"),
                                  f"cancel of SessionId {session_id}")
    return None


@case("hostile.sql_metacharacters", "Quotes and SQL in SessionId and Title are data: saved and launched, or refused",
      "hostile")
def hostile_sql_metacharacters(ctx: Context) -> str | None:
    safe_id, _ = ctx.scheduled("beforeSql")
    session_id = ctx.session_id("q'\";--") + " OR 1=1; DROP TABLE sessions;--"
    body = ctx.session_body(session_id, Title="Robert'); DROP TABLE students;-- \" %_ \\")
    answer = ctx.driver.call("POST", "/session", body=body)
    expect_refusal_or_success(answer, "a SessionId and Title full of SQL")
    if answer.status == 200:
        from urllib.parse import quote

        join_url(ctx.launch(quote(session_id, safe=""), ctx.learners[0]), "a learner's launch of that session")
    join_url(ctx.launch(safe_id, ctx.learners[0]), "a launch of a session saved before (is the data intact?)")
    expect_error(ctx.driver.call("GET", "/session/x'%20OR%20'1'%3D'1/attendees"), "attendance of ' OR '1'='1",
                 [400, 404])
    return f"answered {answer.status}"


@case("hostile.long_and_control", "A 10 000-character SessionId and NUL in a Title: refused with envelopes (or "
      "accepted), never a 5xx",
      "hostile")
def hostile_long_and_control(ctx: Context) -> str | None:
    ctx.instructors_added()
    expect_refusal_or_success(ctx.driver.call("POST", "/session", body=ctx.session_body("s" * 10_000)),
                              "a 10 000-character SessionId")
    expect_refusal_or_success(ctx.driver.call("POST", "/session", body=ctx.session_body(
        ctx.session_id("nul"), Title="a\u0000b\u202e")), "a Title holding NUL")
    return None


# --- viltbridge extras (not in the contract: run with --extras) ---------------------------------------------


@case("extra.body_limit", "viltbridge: a body over the limit is a 413 envelope before anything is read", "extra")
def extra_body_limit(ctx: Context) -> str | None:
    answer = ctx.driver.call("POST", "/session", content=json.dumps({"Description": "x" * 2_000_000}).encode())
    expect_error(answer, "a 2 MB body", [413])
    return None


@case("extra.oauth_with_lms_credentials", "viltbridge: the Basic username/password also work as OAuth client "
      "credentials", "extra")
def extra_oauth_with_lms_credentials(ctx: Context) -> str | None:
    target = ctx.driver.target
    if target.username is None or target.password is None:
        raise CaseSkipped("needs --username/--password")
    answer = ctx.driver.token(client_id=target.username, client_secret=target.password)
    body = answer.json()
    if answer.status != 200 or not isinstance(body, dict) or not body.get("access_token"):
        raise _fail("POST /oauth/token", answer, "an access token")
    expect_error(ctx.driver.call("GET", f"/session/{ctx.session_id('oauth')}/attendees",
                                 authorization=f"Bearer {body['access_token']}"),
                 "a call with that token (an unknown session: 404 means the token was accepted)", [404])
    return None



@case("extra.tampered_launch_link", "viltbridge: a launch link with a changed signature is refused (4xx, no "
      "redirect)", "extra")
def extra_tampered_launch_link(ctx: Context) -> str | None:
    from urllib.parse import urlsplit

    session_id, _ = ctx.scheduled("tamper")
    url = join_url(ctx.launch(session_id, ctx.learners[0]), "a learner's launch")
    if urlsplit(url).netloc != urlsplit(ctx.driver.base).netloc:
        raise CaseSkipped("the joinUrl points at the provider, not at a link of the connector's own")
    tampered = url[:-1] + ("A" if url[-1] != "A" else "B")
    opened = ctx.driver.open_link(tampered)
    if not 400 <= opened.status < 500 or opened.headers.get("location"):
        raise _fail("opening a launch link with a changed signature", opened, "a 4xx page and no redirect")
    return None

# --- last: playing the class moves a simulator's clock past it, so later sessions would start "in the past" ---


@case("attendance.played", "A class played at the provider: stayers are on the roster, a 5-minute leaver is not",
      "scenario")
def attendance_played(ctx: Context) -> str | None:
    if ctx.scenario is None:
        raise CaseSkipped("needs --provider-scenario (a simulator URL, or 'clicks')")
    if len(ctx.learners) < 3:
        raise CaseSkipped("needs three learner emails (two who stay, one who leaves early)")
    session_id, body = ctx.scheduled("played")
    stayers, leaver = ctx.learners[:2], ctx.learners[2]
    people = [Attendee(ctx.host, STAY_MINUTES + 5, host=True)]
    people += [Attendee(email, STAY_MINUTES) for email in stayers] + [Attendee(leaver, SHORT_MINUTES)]
    for person in people:
        person.join_url = join_url(ctx.launch(session_id, person.email), f"launch for {person.email}")
    start = datetime.fromisoformat(body["DateBegin"]).replace(tzinfo=UTC)
    ctx.scenario.play(ctx.driver, start, people)
    deadline = time.monotonic() + ctx.attendance_timeout
    last: Exchange | None = None
    while True:
        last = ctx.driver.call("GET", f"/session/{session_id}/attendees")
        if last.status == 200:
            emails = roster(last, "GET attendees after the class")
            if all(email.lower() in emails for email in stayers) and leaver.lower() not in emails:
                return f"roster: {', '.join(sorted(emails))}"
            wait = 2.0
        else:
            expect_error(last, "GET attendees after the class", range(400, 600))
            wait = float(last.headers.get("retry-after") or 2)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        ctx.sleep(min(wait, remaining))
    raise _fail("GET attendees after the class", last,
                f"200 listing {', '.join(stayers)} (stayed {STAY_MINUTES} of 60 min) and not {leaver} "
                f"(left after {SHORT_MINUTES} min) within {ctx.attendance_timeout:.0f} s")
