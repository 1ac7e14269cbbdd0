"""Every console page in Debian's Chromium, at a laptop's width (1366 px) and a phone's (390 px): no console error or
uncaught exception, no serious or critical axe-core violation, exactly one h1, a skip link as the first thing the
keyboard reaches (with a visible focus ring), the current page marked in the navigation, and nothing wider than
the screen (an instructor's launch button and calendar within reach without scrolling sideways). A screenshot of
each page at each width goes to `build/screenshots/<page>-<width>.png` (`VILTBRIDGE_ARTIFACTS`).

axe-core comes from npm, pinned in tests/web/axe/package-lock.json; `make test` installs it into build/npm
(`VILTBRIDGE_AXE_CORE` points elsewhere). To check another page, add a `Visit` to `admin_pages`, `instructor_pages`
or `anonymous_pages`."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.conftest import NOW, Db, service_unavailable, session_body
from tests.web.test_console_browser import ARTIFACTS, CHROMIUM, FLAGS, PASSWORD, b64, lms_client, sign_in
from viltbridge.app import console_users
from viltbridge.core.models import JobRequest
from viltbridge.store import job_ledger

REPOSITORY = Path(__file__).resolve().parents[2]
AXE_CORE = Path(os.environ.get("VILTBRIDGE_AXE_CORE",
                               REPOSITORY / "build" / "npm" / "node_modules" / "axe-core" / "axe.min.js"))
WIDTHS = {1366: 768, 390: 844}  # a common laptop, a common phone (CSS pixels)
BLOCKING_IMPACTS = ("serious", "critical")


@dataclass(frozen=True)
class Visit:
    """One page of the tour: where it is, the navigation entry marked as the current page (if any), the status it
    answers with, what must be within reach without scrolling sideways (a CSS selector, its first match), and what
    brings the page on screen when a plain visit does not (a form to submit)."""

    name: str
    path: str
    here: str | None = None
    status: int = 200
    in_reach: str | None = None
    then: Callable[[Any], None] | None = None


def rotate_the_secret(page: Any) -> None:
    """As a browser without htmx would (a plain form POST), so the secret arrives as a page of its own."""
    with page.expect_navigation():
        page.evaluate("document.querySelector(\"form[action*='/rotate-secret']\").submit()")
    page.wait_for_selector("#new-secret")


def admin_pages() -> list[Visit]:
    return [
        Visit("connections", "/console/connections", "Connections"),
        Visit("connection", "/console/connections/acme", "Connections"),
        Visit("new-connection", "/console/connections/new", "Connections"),
        Visit("secret", "/console/connections/acme-spare", "Connections", then=rotate_the_secret),
        Visit("sessions", "/console/sessions", "Sessions"),
        Visit("session-part", "/console/sessions/acme/lo-1-p1", "Sessions"),
        Visit("session-part-upcoming", "/console/sessions/acme/lo-1-p2", "Sessions"),
        Visit("jobs", "/console/jobs", "Dead jobs"),
        Visit("audit", "/console/audit", "Audit log"),
        Visit("account", "/console/account", "Ada Admin"),
        Visit("message-no-such-connection", "/console/connections/no-such-thing", "Connections", status=404),
    ]


def instructor_pages() -> list[Visit]:
    return [
        Visit("my-sessions", "/console/my-sessions", "My sessions", in_reach="a:text-is('Launch as host')"),
        Visit("my-session", "/console/my-sessions/acme/lo-1-p2", "My sessions", in_reach="a:text-is('Launch as host')"),
        Visit("my-session-ended", "/console/my-sessions/acme/lo-1-p1", "My sessions"),
        Visit("my-calendar", "/console/my-calendar", "My calendar", in_reach="#week a.class"),
        Visit("my-account", "/console/account", "Tess Teacher"),
        Visit("message-not-allowed", "/console/sessions", status=403),
    ]


def anonymous_pages() -> list[Visit]:
    return [Visit("sign-in", "/console/login")]


@pytest.fixture
def chromium() -> Iterator[Any]:
    """One browser for the whole tour (one test); each person gets a context of their own."""
    if not CHROMIUM.exists():
        service_unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def axe_core() -> Path:
    if not AXE_CORE.is_file():
        service_unavailable(f"axe-core is not installed at {AXE_CORE}: run `make build/npm/node_modules/axe-core/"
                            "axe.min.js` (npm ci of tests/web/axe/package-lock.json) or set VILTBRIDGE_AXE_CORE")
    return AXE_CORE


def a_day_of_classes(live_server: str, db: Db, clock: Any) -> None:
    """A three-part class (part 1 has ended: a learner launched it, nothing more), a spare connection, a dead job,
    an admin and an instructor: every page has something to show."""
    acme = db.create_connection("acme", "link")
    db.create_connection("acme-spare", "link")
    with db.session() as s, s.begin():
        console_users.create(s, NOW, "test", "ada@example.com", ["integrations-manage", "roster-manage"],
                             password=PASSWORD, display_name="Ada Admin")
        console_users.create(s, NOW, "test", "tess@example.com", ["instructor"], password=PASSWORD,
                             display_name="Tess Teacher", time_zone="Europe/Berlin")
    with lms_client(live_server, acme) as lms:
        assert lms.post("/instructor", json={"Email": "tess@example.com", "FirstName": "Tess",
                                             "LastName": "Teacher"}).status_code == 200
        for part in range(3):
            body = session_body(f"lo-1-p{part + 1}", start=NOW + timedelta(minutes=10, days=part), minutes=90,
                                InstructorEmails="tess@example.com", LoId="lo-1",
                                Title="Forklift safety: a long title that a phone has to wrap somewhere sensible")
            assert lms.post("/session", json=body).status_code == 200
        join = lms.get(f"/session/lo-1-p1/user/{b64('jane@example.com')}/url").json()["data"]["joinUrl"]
        assert httpx2.get(join.replace("http://testserver", live_server)).status_code == 302  # Jane launches
        clock.set(NOW + timedelta(hours=3))  # part 1 is over
        assert lms.get("/session/lo-1-p1/attendees").status_code == 200
    with db.session() as s, s.begin():
        job = job_ledger.enqueue(s, JobRequest("attendance.collect", "tour:dead", {"session_id": 0}, NOW), NOW)
        job_ledger.claim(s, job, "tour", NOW, timedelta(minutes=5))
        job_ledger.bury(s, job, "tour", NOW, "the provider refused the report: 403 Forbidden (check the scopes)")


AXE_REPORT = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                      targets: v.nodes.map(n => n.target.join(" "))}));
}"""

PAGE_FACTS = """() => {
  const skip = document.querySelector("a.skip-link");
  return {
    h1: document.querySelectorAll("h1").length,
    scrollWidth: document.documentElement.scrollWidth,
    viewportWidth: document.documentElement.clientWidth,
    skipTarget: skip && document.querySelector(skip.getAttribute("href")) !== null,
    current: [...document.querySelectorAll("nav a[aria-current=page]")].map(a => a.textContent.trim()),
  };
}"""

FOCUSED = """() => {
  const focused = document.activeElement;
  const style = getComputedStyle(focused);
  const box = focused.getBoundingClientRect();
  return {isSkipLink: focused.matches("a.skip-link"), outline: style.outlineStyle,
          outlineWidth: parseFloat(style.outlineWidth), onScreen: box.top >= 0 && box.left >= 0 && box.width > 0};
}"""


class Tour:
    """Visits pages in one browser context and collects every problem, so one run lists them all."""

    def __init__(self, context: Any, base: str, axe_core: Path) -> None:
        self.base, self.axe_core = base, axe_core
        self.page = context.new_page()
        self.errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        self.problems: list[str] = []
        self.expected_status = 200

    def _console(self, message: Any) -> None:
        # A page answering 403 or 404 on purpose makes Chromium log that status for the document; nothing else.
        expected = f"the server responded with a status of {self.expected_status}"
        if message.type == "error" and not (self.expected_status >= 400 and expected in message.text):
            self.errors.append(f"console error: {message.text}")

    def visit(self, visit: Visit, width: int) -> None:
        where = f"{visit.name} at {width} px ({visit.path})"
        self.page.set_viewport_size({"width": width, "height": WIDTHS[width]})
        self.errors.clear()
        self.expected_status = visit.status
        response = self.page.goto(self.base + visit.path)
        if response is None or response.status != visit.status:
            self.problems.append(f"{where}: status {response and response.status}, expected {visit.status}")
        if visit.then is not None:
            visit.then(self.page)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{visit.name}-{width}.png"), full_page=True)
        self.problems.extend(f"{where}: {problem}" for problem in self.check(visit))
        self.problems.extend(f"{where}: {error}" for error in self.errors)

    def check(self, visit: Visit) -> Iterator[str]:
        facts = self.page.evaluate(PAGE_FACTS)
        if facts["current"] != ([visit.here] if visit.here else []):
            yield f"the navigation marks {facts['current']} as the current page, expected {visit.here or 'none'}"
        if facts["h1"] != 1:
            yield f"{facts['h1']} h1 elements, expected exactly one"
        if facts["scrollWidth"] > facts["viewportWidth"]:
            yield f"the page is {facts['scrollWidth']} px wide on a {facts['viewportWidth']} px screen"
        if not facts["skipTarget"]:
            yield "no skip link, or it points nowhere"
        if visit.in_reach:
            box = self.page.locator(visit.in_reach).first.bounding_box(timeout=5000)
            if box is None or box["x"] < 0 or box["x"] + box["width"] > facts["viewportWidth"]:
                yield f"{visit.in_reach} is not on screen without scrolling sideways: {box}"
        self.page.keyboard.press("Tab")
        focused = self.page.evaluate(FOCUSED)
        if not focused["isSkipLink"]:
            yield "the first Tab does not reach the skip link"
        elif focused["outline"] == "none" or focused["outlineWidth"] < 2 or not focused["onScreen"]:
            yield f"the focused skip link is not visibly marked on screen: {focused}"
        self.page.add_script_tag(path=str(self.axe_core))
        for violation in self.page.evaluate(AXE_REPORT):
            if violation["impact"] in BLOCKING_IMPACTS:
                yield (f"axe {violation['impact']} {violation['id']} ({violation['help']}) at "
                       f"{'; '.join(violation['targets'][:5])}")


def test_every_console_page_is_accessible_error_free_and_fits_a_phone(chromium: Any, axe_core: Path,
                                                                       live_server: str, db: Db, clock: Any) -> None:
    a_day_of_classes(live_server, db, clock)
    problems: list[str] = []
    people = [("ada@example.com", admin_pages()), ("tess@example.com", instructor_pages()), (None, anonymous_pages())]
    for email, visits in people:
        context = chromium.new_context()
        try:
            tour = Tour(context, live_server, axe_core)
            if email is not None:
                sign_in(tour.page, live_server, email)
                tour.page.wait_for_url(lambda url: "/console/login" not in url)
            for visit in visits:
                for width in WIDTHS:
                    tour.visit(visit, width)
            problems.extend(tour.problems)
        finally:
            context.close()
    assert not problems, "\n".join(["Problems found on the console's pages:", *problems])
