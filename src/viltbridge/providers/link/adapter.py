"""The `link` provider: the embedded default.

Each part gets a room URL from a template (default: a unique room on the public Jitsi Meet server). There is
no provider API, so there is nothing to provision and no attendance report: what viltbridge knows is who clicked
through their personal launch redirect, and the attendance data says so (`AttendanceSource.LAUNCH_ONLY`).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from viltbridge.core.errors import NotFound
from viltbridge.core.models import Role
from viltbridge.core.provider import (
    AccountCheck,
    AttendanceReport,
    AttendanceSource,
    Capabilities,
    ExtendedOption,
    HealthItem,
    InstructorSpec,
    LaunchLink,
    MeetingFacts,
    MeetingRef,
    MeetingSpec,
    ParticipantSegment,
    Person,
    ProviderEvent,
    ProvisionedInstructor,
    SettingsSink,
    WebhookDelivery,
)
from viltbridge.providers.link.settings import LinkSettings
from viltbridge.providers.naming import slug
from viltbridge.providers.settings import parse_settings

log = logging.getLogger("viltbridge.providers.link")

class LinkProvider:
    kind = "link"
    capabilities = Capabilities(
        per_user_links=False,
        webhooks=False,
        host_licences=False,
        recordings=False,
        attendance=AttendanceSource.LAUNCH_ONLY,
        update_in_place=True,
        cancel=True,
    )

    def __init__(self, settings: LinkSettings) -> None:
        self.settings = settings

    @classmethod
    def from_settings(cls, raw: Mapping[str, Any], on_settings_change: SettingsSink | None = None) -> LinkProvider:
        return cls(cls.checked_settings(raw))  # its settings never change by themselves

    @staticmethod
    def checked_settings(raw: Mapping[str, Any]) -> LinkSettings:
        return parse_settings("link", LinkSettings, raw)

    async def provision_instructor(self, instructor: InstructorSpec) -> ProvisionedInstructor:
        return ProvisionedInstructor(provider_user_id=None)

    async def update_instructor(self, old_email: str, instructor: InstructorSpec) -> ProvisionedInstructor:
        return ProvisionedInstructor(provider_user_id=instructor.provider_user_id)

    async def create_meeting(self, spec: MeetingSpec) -> MeetingRef:
        # Unguessable: anyone who knows a public Jitsi room name can walk in.
        parts = [self.settings.room_prefix, slug(spec.title), secrets.token_hex(6)]
        room = "-".join(part for part in parts if part)
        url = self.settings.room_url_template.replace("{room}", room)
        log.debug("link: room %s for session %s at %s", room, spec.session_key, url)
        return MeetingRef(meeting_id=room, join_url=url, host_url=url, data={"room": room})

    async def update_meeting(self, meeting: MeetingRef, spec: MeetingSpec) -> MeetingRef:
        log.debug("link: session %s updated; room %s kept", spec.session_key, meeting.meeting_id)
        return meeting

    async def cancel_meeting(self, meeting: MeetingRef) -> None:
        log.debug("link: room %s retired", meeting.meeting_id)

    async def meeting_facts(self, meeting: MeetingRef) -> MeetingFacts | None:
        return MeetingFacts()  # a room exists whenever someone opens it: nothing to compare, never gone

    async def launch_link(
        self, meeting: MeetingRef, person: Person, role: Role, previous: LaunchLink | None = None
    ) -> LaunchLink:
        if not self.settings.pass_display_name:
            return LaunchLink(url=meeting.join_url, personal=False)
        # Jitsi Meet JSON-parses the value: quotes and backslashes in a name must be escaped, not just wrapped.
        name = quote(json.dumps(person.display_name, ensure_ascii=False), safe="")
        return LaunchLink(url=f"{meeting.join_url}#userInfo.displayName={name}", personal=False,
                          identity={"display_name_tag": person.display_name})

    async def collect_attendance(self, meeting: MeetingRef, spec: MeetingSpec) -> AttendanceReport:
        return AttendanceReport(segments=(), complete=True)

    def health(self) -> list[HealthItem]:
        return [HealthItem("provider API", None, "plain meeting links: there is no provider API to call")]

    async def check(self) -> AccountCheck:
        return AccountCheck("plain meeting links: no provider API and no credentials to check")

    def extended_options(self) -> tuple[ExtendedOption, ...]:
        return ()

    async def aclose(self) -> None:
        """Nothing to release: the link provider holds no connections."""

    def read_webhook(self, raw_body: bytes, headers: Mapping[str, str], now: datetime) -> WebhookDelivery:
        raise NotFound("The link provider sends no webhooks.")

    def segments_from_events(self, events: list[ProviderEvent]) -> list[ParticipantSegment]:
        return []
