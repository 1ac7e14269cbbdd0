"""Extended options: a provider with none answers an empty tree; choices for unknown options are refused."""

from __future__ import annotations

from tests.conftest import Db, Lms, session_body


def test_link_provider_offers_no_extended_options(lms: Lms) -> None:
    response = lms.call("GET", "/session/anything/extendedoptions")
    assert response.status_code == 200
    assert response.json()["data"] == {"extendedOptions": []}


def test_choices_for_options_the_provider_lacks_are_refused_when_options_are_on(lms: Lms, db: Db, connection) -> None:
    from viltbridge.app import connections

    with db.session() as s, s.begin():
        connections.change(s, db.keyring, connection["name"], {"extended_options": "true"})
    before = db.snapshot()
    response = lms.create_session(session_body(ExtendedOptions=[{"Id": "waiting_room", "IsChecked": True}]))
    assert response.status_code == 400
    assert "waiting_room" in response.json()["error"]["message"]
    assert db.snapshot() == before
    assert lms.create_session(session_body(ExtendedOptions=[])).status_code == 200
