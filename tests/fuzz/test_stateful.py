"""schemathesis walks the OpenAPI links over real HTTP: create a session, then update, launch, ask for attendance,
read its options, cancel, save it again, in generated orders with generated data. Every response must be documented,
match its schema, and none may be a server error."""

from __future__ import annotations

import base64
import itertools
import re
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

import schemathesis
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance, use_after_free

from tests.conftest import Db
from viltbridge.config import Settings
from viltbridge.web.app import create_app

SCHEMA = schemathesis.openapi.from_dict(
    create_app(Settings(secret_key=Fernet.generate_key().decode(), _env_file=None)).openapi()  # type: ignore[call-arg]
)
LEARNER = base64.b64encode(b"learner@example.com").decode()
# What the schema does not say (an email, a UTC date before another, a real offset, one-line text) is made
# realistic in valid-by-schema cases only, so that creates succeed and the links after them are walked; the rest
# (ids and titles in any script, descriptions, LoIds, and every invalid case) stays as generated.
REALISTIC_SESSION = {"CreatorEmail": "admin@example.com", "DateBegin": "2026-03-02T15:00:00",
                     "DateEnd": "2026-03-02T16:00:00", "TimeZone": {"UTCOffset": "-05:00"}}
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(value: Any) -> Any:
    return (CONTROL.sub("", value).strip() or "x") if isinstance(value, str) else value


class ContractSequences(SCHEMA.as_state_machine()):  # type: ignore[misc]
    base_url: ClassVar[str]
    new_connection: ClassVar[Callable[[], dict[str, str]]]
    statuses: ClassVar[Counter[tuple[str, int]]]
    followed: ClassVar[Counter[str]]  # calls about a session saved earlier: the links at work

    def __init__(self) -> None:
        super().__init__()
        # Each sequence calls as a connection of its own, so it starts from an empty server: which calls a sequence
        # may make next depends on what the server answered, and Hypothesis replays a failing sequence to shrink it.
        # Against sessions left by earlier sequences the replay would go differently, and Hypothesis would report
        # "inconsistent data generation" instead of the failure.
        caller = type(self).new_connection()
        token = base64.b64encode(f"{caller['username']}:{caller['password']}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}
        self.saved: set[str] = set()  # SessionIds a create or update succeeded with, in this sequence

    def before_call(self, case: Any) -> None:
        if case.meta is None or case.meta.generation.mode != GenerationMode.POSITIVE:
            return
        if case.operation.label in ("POST /session", "PUT /session/{SessionId}") and isinstance(case.body, dict):
            case.body.update(REALISTIC_SESSION)
            for key in ("SessionId", "Title"):
                case.body[key] = one_line(case.body.get(key))
            case.body.pop("InstructorEmails", None)  # free text in the schema, emails in fact
            case.body.pop("ExtendedOptions", None)  # turned off for this connection: always a 400
        if case.operation.label.startswith("GET /session/{SessionId}/user/"):
            case.path_parameters["base64EncodedEmail"] = LEARNER

    def get_call_kwargs(self, case: Any) -> dict[str, Any]:
        return {"base_url": self.base_url, "headers": self.headers}

    def after_call(self, response: Any, case: Any) -> None:
        super().after_call(response, case)
        label = case.operation.label
        self.statuses[(label, response.status_code)] += 1
        session_id = (case.path_parameters or {}).get("SessionId")
        if session_id in self.saved:
            self.followed[label] += 1
        if response.status_code == 200 and label == "POST /session":
            self.saved.add(case.body["SessionId"].strip())
        elif response.status_code == 200 and label == "PUT /session/{SessionId}":
            self.saved.add(session_id.strip())

    def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
        # As in the stateless run: valid-by-schema data may still be refused with a documented 400. And DELETE
        # cancels a session rather than removing it (its attendance and options stay readable, contract §5),
        # so "a deleted resource answers 404" does not apply.
        case.validate_response(response, additional_checks=additional_checks,
                               excluded_checks=[positive_data_acceptance, use_after_free],
                               transport_kwargs=kwargs or None, recorder=self.recorder)


def test_sequences_of_contract_calls_conform(live_server: str, db: Db) -> None:
    statuses: Counter[tuple[str, int]] = Counter()
    followed: Counter[str] = Counter()
    names = (f"sequence-{number}" for number in itertools.count())
    machine = type("LiveContractSequences", (ContractSequences,), {
        "base_url": live_server, "new_connection": staticmethod(lambda: db.create_connection(next(names))),
        "statuses": statuses, "followed": followed})
    machine.run(settings=settings(max_examples=30, stateful_step_count=8, deadline=None, database=None,
                                  suppress_health_check=list(HealthCheck)))
    assert not [call for call in statuses if call[1] >= 500], statuses
    # The links were walked, not just the entry points: saved sessions were called about again, in several ways
    # (which ways varies from run to run: the sequences are random).
    assert len(followed) >= 3, (followed, statuses)
    print(f"stateful: {sum(statuses.values())} calls, {sum(followed.values())} about saved sessions, "
          f"{sum(n for (_, code), n in statuses.items() if code >= 500)} server errors")
