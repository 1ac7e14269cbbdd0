"""The connection pages in a real browser (Debian's Chromium): an admin sees a failing connection in the list with
its reason, retries and cancels its owed work from its page, fails a settings save and sees the problem next to the
field with the input kept, then saves and sees "Saved"; a new connection's form follows the chosen provider. No
JavaScript error on any of these pages. Screenshots at 1366 px and 390 px go to build/screenshots."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.conftest import NOW, Db, session_body
from tests.providers.conftest import zoom_settings, zoom_simulator  # noqa: F401 - the simulator fixture
from tests.web.test_console_browser import PASSWORD, browser, lms_client, shot, sign_in  # noqa: F401 - fixture
from viltbridge.app import console_users
from viltbridge.providers.zoom.simulator import ZoomSimulator

WIDTHS = {"wide": 1366, "phone": 390}


def shots(page: Any, name: str) -> None:
    """The page at both widths; nothing may stick out sideways on the phone but a table's own scroll box."""
    for label, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        shot(page, f"{name}-{label}")
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1 or label == "phone", (name, label, overflow)  # the phone layout is the frame's part
    page.set_viewport_size({"width": WIDTHS["wide"], "height": 900})


def test_an_admin_finds_a_failing_connection_acts_on_its_work_and_fixes_a_setting(
        browser: Any, live_server: str, db: Db, clock: Any, zoom_simulator: ZoomSimulator) -> None:  # noqa: F811
    zoom_simulator.reset(start=NOW)
    zoom_simulator.state.seed_user("tess@example.com", first_name="Tess", last_name="Teacher")
    zoom = db.create_connection("acme-zoom", "zoom", **zoom_settings(zoom_simulator))
    db.create_connection("acme", "link")
    with db.session() as s, s.begin():
        console_users.create(s, NOW, "test", "ada@example.com", ["integrations-manage"], password=PASSWORD,
                             display_name="Ada Admin")
    with lms_client(live_server, zoom) as lms:
        assert lms.post("/instructor", json={"Email": "tess@example.com", "FirstName": "Tess",
                                             "LastName": "Teacher"}).status_code == 200
        zoom_simulator.state.inject_fault(503, count=100_000, path="/oauth/token")
        zoom_simulator.state.revoke_tokens()
        for external_id in ("z-1", "z-2"):
            assert lms.post("/session", json=session_body(external_id, start=NOW + timedelta(days=1),
                                                          InstructorEmails="tess@example.com")).status_code == 200
    errors: list[str] = []
    context = browser.new_context(viewport={"width": WIDTHS["wide"], "height": 900})
    page = context.new_page()
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        sign_in(page, live_server, "ada@example.com")
        page.wait_for_url(f"{live_server}/console/connections")
        failing = page.locator("tr[data-connection=acme-zoom]")
        assert failing.get_attribute("data-health") == "failing"
        assert "failing" in failing.inner_text() and "token renewal failing" in failing.inner_text()
        assert "ok" in page.inner_text("tr[data-connection=acme] td.health-cell")
        shots(page, "connections-health")

        failing.locator("a").click()
        page.wait_for_selector("#owed-jobs")
        assert "token renewal failing" in page.inner_text("#verdict")
        rows = page.locator("#owed-jobs tr[data-kind='meeting.sync']")  # attendance jobs wait for the classes
        assert rows.count() == 2
        first, second = (rows.nth(i).get_attribute("data-job") for i in range(2))
        shots(page, "connection-owed-work")
        page.locator(f"tr[data-job='{first}'] button", has_text="Retry now").click()
        page.wait_for_selector("#notice")
        assert f"Job #{first} (meeting.sync): queued to run now." in page.inner_text("#notice")

        cancel = page.locator(f"tr[data-job='{second}'] details.confirm")
        cancel.locator("summary").click()  # the confirmation says what cancelling means before anything happens
        assert "The meeting is not created, changed or cancelled" in cancel.inner_text()
        cancel.locator("button", has_text=f"Cancel job {second}").click()
        page.wait_for_selector(f"tr[data-job='{second}'][data-state=cancelled]")
        assert "cancelled: it will not run" in page.inner_text("#notice")

        page.goto(f"{live_server}/console/connections/acme#settings")
        page.fill("#s-room_url_template", "ftp://meet.example.org/{room}")
        page.fill("#s-room_prefix", "typed")
        page.click("button:text-is('Save settings')")
        page.wait_for_selector("#s-room_url_template-error")
        assert "must be an http(s) URL" in page.inner_text("[data-setting=room_url_template]")
        assert page.input_value("#s-room_url_template") == "ftp://meet.example.org/{room}"
        assert page.input_value("#s-room_prefix") == "typed"
        assert page.get_attribute("#s-room_url_template", "aria-invalid") == "true"
        shots(page, "connection-settings-error")
        page.fill("#s-room_url_template", "https://meet.example.org/{room}")
        page.click("button:text-is('Save settings')")
        page.wait_for_selector("#notice")
        assert "Saved." in page.inner_text("#notice")
        assert page.input_value("#s-room_url_template") == "https://meet.example.org/{room}"
        assert page.input_value("#s-room_prefix") == "typed"
        shots(page, "connection-settings-saved")

        page.goto(f"{live_server}/console/connections/new")
        page.fill("#connection-name", "acme-teams")
        page.select_option("#provider-choice", "teams")  # htmx brings the provider's fields, keeping the name
        page.wait_for_selector("#s-tenant_id")
        assert page.input_value("#connection-name") == "acme-teams"
        assert page.get_attribute("#s-client_secret", "type") == "password"
        assert page.locator("#s-tenant_id[required]").count() == 1
        shots(page, "new-connection")
    finally:
        context.close()
        zoom_simulator.state.clear_faults()
    # The failed save answers 400 on purpose (the form with its errors), which Chromium logs as a failed load.
    refused_form = "Failed to load resource: the server responded with a status of 400 (Bad Request)"
    assert errors.count(refused_form) == 1 and [error for error in errors if error != refused_form] == []
