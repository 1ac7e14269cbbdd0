"""The shared provider acceptance suite, run against the Teams adapter (this folder's `harness`)."""

from tests.providers.test_acceptance import *  # noqa: F403
