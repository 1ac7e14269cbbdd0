"""AddInstructor / UpdateInstructor idempotency and renames."""

from __future__ import annotations

from tests.conftest import Db, Lms


def instructors(db: Db) -> list[tuple]:
    with db.engine.connect() as conn:
        return conn.exec_driver_sql(
            "SELECT email, first_name, last_name, active FROM instructors ORDER BY email").all()


def test_adding_twice_updates(lms: Lms, db: Db) -> None:
    assert lms.add_instructor("Ann@Example.com", "Ann", "Smith").status_code == 200
    assert lms.add_instructor("ann@example.com", "Anne", "Smyth").status_code == 200
    assert instructors(db) == [("ann@example.com", "Anne", "Smyth", True)]


def test_update_renames_and_deactivates(lms: Lms, db: Db) -> None:
    lms.add_instructor("old@example.com")
    response = lms.call("PUT", "/instructor", json={"oldEmail": "old@example.com", "newEmail": "new@example.com",
                                                    "firstName": "N", "lastName": "E", "isActive": False})
    assert response.status_code == 200, response.text
    assert instructors(db) == [("new@example.com", "N", "E", False)]


def test_update_of_an_unknown_instructor_creates_it(lms: Lms, db: Db) -> None:
    response = lms.call("PUT", "/instructor", json={"OldEmail": "ghost@example.com", "NewEmail": "ghost@example.com",
                                                    "FirstName": "G", "LastName": "H"})
    assert response.status_code == 200
    assert instructors(db) == [("ghost@example.com", "G", "H", True)]


def test_a_rename_carries_over_to_sessions(lms: Lms, db: Db) -> None:
    from tests.conftest import session_body

    lms.add_instructor("old@example.com")
    lms.create_session(session_body(InstructorEmails="old@example.com"))
    lms.call("PUT", "/instructor", json={"OldEmail": "old@example.com", "NewEmail": "new@example.com",
                                         "FirstName": "N", "LastName": "E"})
    with db.engine.connect() as conn:
        assert "new@example.com" in str(conn.exec_driver_sql("SELECT instructor_emails FROM sessions").scalar_one())


def test_a_deactivated_instructor_launches_as_an_attendee(lms: Lms, db: Db, clock) -> None:
    from datetime import timedelta

    from tests.conftest import NOW, session_body

    lms.add_instructor("t@example.com")
    lms.create_session(session_body(start=NOW))
    lms.call("PUT", "/instructor", json={"OldEmail": "t@example.com", "NewEmail": "t@example.com",
                                         "FirstName": "T", "LastName": "T", "IsActive": False})
    url = lms.launch("sess-1", "t@example.com").json()["data"]["joinUrl"]
    clock.set(NOW + timedelta(minutes=1))
    assert lms.client.get(url.replace("http://testserver", "")).status_code == 302
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT role FROM launches").scalar_one() == "attendee"
