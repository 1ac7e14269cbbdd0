"""The shared provider acceptance suite, run against the GoTo Training adapter and its simulator (the `harness`
fixture of this folder's conftest overrides the shared one)."""

from tests.providers.test_acceptance import *  # noqa: F403
