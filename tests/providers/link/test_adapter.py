"""The `link` provider: settings validation, room creation, stable links across updates, launch links."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from viltbridge.core.errors import InvalidInput
from viltbridge.core.models import Role
from viltbridge.core.provider import AttendanceSource, MeetingRef, MeetingSpec, Person
from viltbridge.providers.link.adapter import LinkProvider
from viltbridge.providers.link.settings import DEFAULT_TEMPLATE
from viltbridge.providers.registry import build_provider

pytestmark = pytest.mark.pure

START = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
FRAGMENT = "#userInfo.displayName="


def _spec(title: str = "Safety basics", **changes: Any) -> MeetingSpec:
    values: dict[str, Any] = {
        "session_key": "conn-1/sess-1", "title": title, "description": "Part of onboarding", "starts_at": START,
        "ends_at": START + timedelta(hours=1), "zone": "America/New_York", "utc_offset_minutes": -300, "host": None,
    }
    values.update(changes)
    return MeetingSpec(**values)


def _refused(settings_: dict[str, Any]) -> str:
    with pytest.raises(InvalidInput) as caught:
        LinkProvider.from_settings(settings_)
    message = caught.value.message
    assert "Value error" not in message  # pydantic's wording is not for the admin reading this
    return message


def _display_name(url: str) -> Any:
    fragment = urlsplit(url).fragment
    key, _, value = fragment.partition("=")
    assert key == "userInfo.displayName"
    assert "&" not in value and "=" not in value and "#" not in value  # cannot break out of the parameter
    return json.loads(unquote(value))  # Jitsi Meet JSON-parses the decoded value


# --- settings ---------------------------------------------------------------------------------------------------


def test_defaults() -> None:
    provider = LinkProvider.from_settings({})
    assert provider.settings.room_url_template == DEFAULT_TEMPLATE
    assert provider.settings.pass_display_name is True


def test_registry_builds_the_link_provider() -> None:
    provider = build_provider("link", {"room_prefix": "acme"})
    assert isinstance(provider, LinkProvider)
    assert provider.kind == "link"


def test_unknown_setting_is_named_and_known_ones_listed() -> None:
    message = _refused({"room_template": "https://meet.example.org/{room}"})
    assert "room_template" in message
    assert "unknown setting" in message
    for known in ("room_url_template", "room_prefix", "pass_display_name"):
        assert known in message


def test_template_without_room_placeholder_is_refused() -> None:
    message = _refused({"room_url_template": "https://meet.example.org/standup"})
    assert "room_url_template" in message
    assert "{room}" in message
    assert "https://meet.example.org/{room}" in message  # an example of what to send


@pytest.mark.parametrize(
    "template",
    ["ftp://meet.example.org/{room}", "meet.example.org/{room}", "javascript:alert(1)//{room}", "https:///{room}",
     "//meet.example.org/{room}", "{room}"],
)
def test_non_http_template_is_refused(template: str) -> None:
    message = _refused({"room_url_template": template})
    assert "room_url_template" in message
    assert "http" in message


@pytest.mark.parametrize("prefix", ["vb_1", "a b", "x" * 21, "vb/../x", "ünï", "vb?x=1", "vb#"])
def test_bad_prefix_is_refused(prefix: str) -> None:
    message = _refused({"room_prefix": prefix})
    assert "room_prefix" in message
    assert "letters, digits and '-'" in message


@pytest.mark.parametrize("value", ["maybe", 2, None])
def test_bad_display_name_switch_is_refused(value: object) -> None:
    assert "pass_display_name" in _refused({"pass_display_name": value})


def test_several_problems_are_all_reported() -> None:
    message = _refused({"room_prefix": "a_b", "colour": "red"})
    assert "room_prefix" in message and "colour" in message


@pytest.mark.parametrize(
    "template",
    ["https://meet.example.org/{room}", "http://localhost:8000/rooms/{room}?lang=en", "https://{room}.example.org/"],
)
def test_valid_templates_are_accepted(template: str) -> None:
    assert LinkProvider.from_settings({"room_url_template": template}).settings.room_url_template == template


# --- rooms ------------------------------------------------------------------------------------------------------


async def test_each_create_gets_its_own_room() -> None:
    provider = LinkProvider.from_settings({})
    spec = _spec()  # the same request every time, as on a retry
    refs = [await provider.create_meeting(spec) for _ in range(200)]
    assert len({ref.meeting_id for ref in refs}) == len(refs)
    assert len({ref.join_url for ref in refs}) == len(refs)
    other = await LinkProvider.from_settings({}).create_meeting(spec)
    assert other.meeting_id not in {ref.meeting_id for ref in refs}


async def test_room_is_not_derivable_from_the_request() -> None:
    ref = await LinkProvider.from_settings({}).create_meeting(_spec("Safety basics"))
    assert ref.meeting_id.startswith("vb-safety-basics-")
    secret = ref.meeting_id.removeprefix("vb-safety-basics-")
    assert re.fullmatch(r"[0-9a-f]{12,}", secret), secret  # at least 48 random bits


async def test_room_goes_into_the_template() -> None:
    provider = LinkProvider.from_settings(
        {"room_url_template": "https://meet.example.org/rooms/{room}?lang=en", "room_prefix": "acme"}
    )
    ref = await provider.create_meeting(_spec())
    assert ref.join_url == f"https://meet.example.org/rooms/{ref.meeting_id}?lang=en"
    assert ref.meeting_id.startswith("acme-")
    assert ref.host_url == ref.join_url
    assert ref.data["room"] == ref.meeting_id


async def test_empty_prefix_leaves_no_stray_dash() -> None:
    ref = await LinkProvider.from_settings({"room_prefix": ""}).create_meeting(_spec("--Weekly sync--"))
    assert ref.meeting_id.startswith("weekly-sync-")


@settings(max_examples=100, deadline=None)
@given(title=st.text(max_size=120), prefix=st.from_regex(r"[A-Za-z0-9-]{0,20}", fullmatch=True))
def test_any_title_gives_a_url_safe_room(title: str, prefix: str) -> None:
    provider = LinkProvider.from_settings({"room_prefix": prefix})
    ref = asyncio.run(provider.create_meeting(_spec(title)))
    assert re.fullmatch(r"[A-Za-z0-9-]+", ref.meeting_id)
    assert not ref.meeting_id.startswith("-") or prefix.startswith("-")
    assert ref.join_url == DEFAULT_TEMPLATE.replace("{room}", ref.meeting_id)
    assert urlsplit(ref.join_url).path == f"/{ref.meeting_id}"


async def test_update_keeps_room_and_link() -> None:
    provider = LinkProvider.from_settings({})
    created = await provider.create_meeting(_spec())
    later = START + timedelta(days=1)
    changed = _spec("Safety basics (moved)", starts_at=later, ends_at=later + timedelta(hours=2), description="new",
                    utc_offset_minutes=60, zone="Europe/Paris")
    updated = await provider.update_meeting(created, changed)
    assert updated.meeting_id == created.meeting_id
    assert updated.join_url == created.join_url
    assert updated.host_url == created.host_url
    assert updated.data == created.data


async def test_cancel_succeeds() -> None:
    provider = LinkProvider.from_settings({})
    await provider.cancel_meeting(await provider.create_meeting(_spec()))


# --- launch links -------------------------------------------------------------------------------------------------

MEETING = MeetingRef(meeting_id="vb-room-0123456789ab", join_url="https://meet.jit.si/vb-room-0123456789ab",
                     host_url="https://meet.jit.si/vb-room-0123456789ab")


@pytest.mark.parametrize("role", list(Role))
async def test_launch_link_carries_the_display_name(role: Role) -> None:
    link = await LinkProvider.from_settings({}).launch_link(MEETING, Person("ann@example.com", "Ann", "Smith"), role)
    assert link.url.startswith(MEETING.join_url + FRAGMENT)
    assert _display_name(link.url) == "Ann Smith"
    assert link.personal is False


async def test_launch_link_falls_back_to_the_email() -> None:
    link = await LinkProvider.from_settings({}).launch_link(MEETING, Person("ann@example.com"), Role.ATTENDEE)
    assert _display_name(link.url) == "ann@example.com"


@pytest.mark.parametrize("setting", [False, "false", 0])
async def test_no_fragment_when_display_name_is_off(setting: object) -> None:
    provider = LinkProvider.from_settings({"pass_display_name": setting})
    link = await provider.launch_link(MEETING, Person("ann@example.com", "Ann", "Smith"), Role.ATTENDEE)
    assert link.url == MEETING.join_url
    assert "#" not in link.url and "displayName" not in link.url


@pytest.mark.parametrize(
    ("first", "last"),
    [('Ann "Annie"', "Smith"), ("Back\\slash", "O'Brien"), ("José", "Núñez"), ("A&B", "x=y#z"), ("李", "小龙")],
)
async def test_display_name_survives_any_characters(first: str, last: str) -> None:
    link = await LinkProvider.from_settings({}).launch_link(MEETING, Person("a@example.com", first, last), Role.HOST)
    assert _display_name(link.url) == f"{first} {last}"


@settings(max_examples=100, deadline=None)
@given(first=st.text(max_size=30), last=st.text(max_size=30))
def test_display_name_property(first: str, last: str) -> None:
    person = Person("a@example.com", first, last)
    link = asyncio.run(LinkProvider.from_settings({}).launch_link(MEETING, person, Role.ATTENDEE))
    assert link.url.startswith(MEETING.join_url + FRAGMENT)
    assert _display_name(link.url) == person.display_name


# --- capabilities and attendance --------------------------------------------------------------------------------


def test_capabilities_say_attendance_is_launch_only() -> None:
    capabilities = LinkProvider.from_settings({}).capabilities
    assert capabilities.attendance == AttendanceSource.LAUNCH_ONLY
    assert capabilities.per_user_links is False
    assert capabilities.webhooks is False
    assert capabilities.update_in_place is True


async def test_provider_reports_no_attendance_of_its_own() -> None:
    provider = LinkProvider.from_settings({})
    meeting = await provider.create_meeting(_spec())
    report = await provider.collect_attendance(meeting, _spec())
    assert report.segments == ()
    assert report.complete is True
    assert provider.extended_options() == ()
