"""The provider acceptance suite (as Airbyte's connector acceptance tests): what every adapter must do through the
provider protocol, run against each provider's real adapter and its environment. Provider quirks get their own
tests in the provider's folder."""

from __future__ import annotations

import pytest

from tests.providers.conftest import Harness
from viltbridge.core.models import Role
from viltbridge.core.provider import AttendanceReport, AttendanceSource, Person

pytestmark = pytest.mark.pure


async def test_instructors_can_be_provisioned_and_updated(harness: Harness) -> None:
    provisioned = await harness.provider.provision_instructor(harness.host)
    again = await harness.provider.update_instructor(harness.host.email, harness.host)
    assert provisioned.provider_user_id == again.provider_user_id


async def test_a_meeting_keeps_its_join_link_through_edits(harness: Harness) -> None:
    created = await harness.provider.create_meeting(harness.spec())
    assert created.meeting_id and created.join_url.startswith(("http://", "https://"))
    edited = await harness.provider.update_meeting(created, harness.spec(title="Safety basics (moved)"))
    assert edited.meeting_id == created.meeting_id
    assert edited.join_url == created.join_url


async def test_every_role_gets_a_link(harness: Harness) -> None:
    meeting = await harness.provider.create_meeting(harness.spec())
    for person, role in ((Person(harness.host.email), Role.HOST), (Person(harness.cohost.email), Role.COHOST),
                         (Person("learner@example.com"), Role.ATTENDEE)):
        link = await harness.provider.launch_link(meeting, person, role)
        assert link.url.startswith(("http://", "https://")), (role, link)
    learner = await harness.provider.launch_link(meeting, Person("learner@example.com"), Role.ATTENDEE)
    # A provider that says it mints personal links must do so for learners.
    assert learner.personal or not harness.provider.capabilities.per_user_links


async def test_cancelling_twice_is_harmless(harness: Harness) -> None:
    meeting = await harness.provider.create_meeting(harness.spec())
    await harness.provider.cancel_meeting(meeting)
    await harness.provider.cancel_meeting(meeting)


async def test_attendance_is_reported_in_the_declared_way(harness: Harness) -> None:
    meeting = await harness.provider.create_meeting(harness.spec())
    report = await harness.provider.collect_attendance(meeting, harness.spec())
    assert isinstance(report, AttendanceReport)
    if harness.provider.capabilities.attendance is AttendanceSource.LAUNCH_ONLY:
        assert report.segments == () and report.complete


async def test_check_proves_the_credentials_and_says_what_it_verified(harness: Harness) -> None:
    checked = await harness.provider.check()
    assert checked.verified.strip()
    if hasattr(harness.provider, "client"):  # an HTTP API: its Date header says how far its clock is from ours
        assert checked.clock_offset_seconds is not None and -2 < checked.clock_offset_seconds < 1
    # A read-only call: nothing was created at the provider by checking.
    assert not any(item.ok is False for item in harness.provider.health()), harness.provider.health()


def test_extended_options_have_unique_ids(harness: Harness) -> None:
    options = harness.provider.extended_options()
    assert len({option.id for option in options}) == len(options)


async def test_closing_releases_the_adapter_and_may_be_repeated(harness: Harness) -> None:
    await harness.provider.create_meeting(harness.spec())
    await harness.provider.aclose()
    await harness.provider.aclose()
