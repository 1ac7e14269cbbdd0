"""The shared provider acceptance suite, run against the Jitsi adapter and its simulator (JaaS and self-hosted; the
`harness` fixture of this folder's conftest overrides the shared one)."""

from tests.providers.test_acceptance import *  # noqa: F403
