"""The acceptance suite's harness for the link provider: no API behind it, so nothing to start."""

from __future__ import annotations

from tests.providers.conftest import Harness, meeting_spec
from viltbridge.core.provider import InstructorSpec
from viltbridge.providers.link.adapter import LinkProvider

HOST = InstructorSpec(email="tess@example.com", first_name="Tess", last_name="Teacher")
COHOST = InstructorSpec(email="cole@example.com", first_name="Cole", last_name="Helper")


def harness(environment: None, variant: str) -> Harness:
    return Harness(LinkProvider.from_settings({}), HOST, COHOST, meeting_spec(HOST, COHOST))
