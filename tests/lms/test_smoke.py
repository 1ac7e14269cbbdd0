from tests.conftest import Lms, session_body


def test_create_and_launch(lms: Lms) -> None:
    assert lms.create_session(session_body()).status_code == 200
    response = lms.launch("sess-1", "learner@example.com")
    assert response.status_code == 200, response.text
    assert response.json()["data"]["joinUrl"].startswith("http://testserver/l/")
