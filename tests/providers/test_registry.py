"""The provider registry names every provider folder, and each entry's adapter and settings model load."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

import viltbridge.providers
from viltbridge.core.errors import InvalidInput
from viltbridge.providers.registry import PROVIDERS, check_settings, provider_spec

pytestmark = pytest.mark.pure

PROVIDER_FOLDERS = sorted(path.parent.name for path in Path(viltbridge.providers.__file__).parent.glob("*/adapter.py"))


def test_every_provider_folder_is_registered_under_its_name() -> None:
    assert sorted(PROVIDERS) == PROVIDER_FOLDERS


@pytest.mark.parametrize("kind", sorted(PROVIDERS))
def test_each_entry_names_an_adapter_and_a_settings_model_that_load(kind: str) -> None:
    spec = provider_spec(kind)
    assert spec.kind == kind and spec.display_name
    assert callable(spec.adapter_class().from_settings)
    assert issubclass(spec.settings_model(), BaseModel)


def test_an_unknown_kind_is_refused_with_the_known_ones_listed() -> None:
    with pytest.raises(InvalidInput) as refused:
        check_settings("skype", {})
    assert "Unknown provider 'skype'" in refused.value.message
    assert all(kind in refused.value.message for kind in PROVIDERS)


def test_wrong_settings_are_refused_by_the_kinds_model() -> None:
    with pytest.raises(InvalidInput) as refused:
        check_settings("link", {"no_such_setting": "x"})
    assert "no_such_setting: unknown setting" in refused.value.message
