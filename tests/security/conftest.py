"""The BigBlueButton simulator fixtures (the SSRF guard's tests call a real provider server)."""

from tests.providers.bbb.conftest import bbb_simulator, sim  # noqa: F401 - fixtures, registered by import
