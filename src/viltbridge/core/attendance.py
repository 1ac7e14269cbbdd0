"""Who attended, and why: decisions a person can read.

Two sources of evidence. Providers with a participants report give segments, tied to LMS emails through what the
launch ledger knows (identity first, never a guess) and judged by a readable policy. Providers that report nothing
(the `link` provider) leave launch evidence: a person counts when they clicked through their link while the class
was open.

Time is real elapsed time: every instant is compared in UTC, so a class that crosses a DST change lasts the time
that really passed, not the difference between two local wall-clock readings.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from types import MappingProxyType
from typing import Any, Literal, get_args

from viltbridge.core.emails import normalize_email
from viltbridge.core.errors import InvalidInput
from viltbridge.core.models import AttendanceState, Launch, Role
from viltbridge.core.provider import ParticipantSegment


class AttendanceDecision:
    """One learner's attendance of a part or a session, with the explanation a person reads.

    A value: it cannot be changed, and it compares, hashes, prints and pickles as (email, attended, explanation).
    `decide_from_segments` makes one per learner by the 100,000, so it writes no explanation until someone reads it
    (the text is the same either way), and this is no frozen dataclass, whose constructor sets every field through
    `object.__setattr__` (building them was 12% of the pipeline's time in issue 16's profile).
    """

    __slots__ = ("_attended", "_email", "_explain", "_explanation", "_judgement")
    __match_args__ = ("email", "attended", "explanation")

    def __init__(self, email: str, attended: bool, explanation: str) -> None:
        self._email = email
        self._attended = attended
        self._explanation: str | None = explanation
        self._explain: Callable[[_Judgement], str] | None = None  # writes the explanation from the judgement: set
        self._judgement: _Judgement | None = None  # once, by `_explained_later`, and never changed

    @property
    def email(self) -> str:
        return self._email

    @property
    def attended(self) -> bool:
        return self._attended

    @property
    def explanation(self) -> str:
        text = self._explanation
        if text is None:  # written at the first read (two threads reading at once both write the same text)
            assert self._explain is not None and self._judgement is not None
            text = self._explanation = self._explain(self._judgement)
        return text

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AttendanceDecision) or other.__class__ is not self.__class__:
            return NotImplemented
        return (self._email, self._attended, self.explanation) == (other._email, other._attended, other.explanation)

    def __hash__(self) -> int:
        return hash((self._email, self._attended, self.explanation))

    def __repr__(self) -> str:
        return (f"{self.__class__.__qualname__}(email={self._email!r}, attended={self._attended!r}, "
                f"explanation={self.explanation!r})")

    def __reduce__(self) -> tuple[type[AttendanceDecision], tuple[str, bool, str]]:
        return self.__class__, (self._email, self._attended, self.explanation)


def _explained_later(email: str, attended: bool, explain: Callable[[_Judgement], str],
                     judgement: _Judgement) -> AttendanceDecision:
    """A decision whose explanation `explain(judgement)` writes when it is first read (no `__init__`: this is the
    pipeline's one object per learner)."""
    decision = object.__new__(AttendanceDecision)
    decision._email, decision._attended = email, attended
    decision._explanation, decision._explain, decision._judgement = None, explain, judgement
    return decision


@dataclass(frozen=True)
class AttendanceOverride:
    """An admin's decision for one learner of one part, with the reason, which beats the evidence."""

    email: str
    attended: bool
    reason: str
    actor: str


def apply_overrides(decisions: list[AttendanceDecision],
                    overrides: Iterable[AttendanceOverride]) -> list[AttendanceDecision]:
    """The decisions with each overridden learner's replaced (or added, when the evidence has none): the
    explanation keeps what the evidence said, so an override never hides it."""
    by_email = {normalize_email(override.email): override for override in overrides}
    if not by_email:
        return decisions
    result: list[AttendanceDecision] = []
    for decision in decisions:
        override = by_email.pop(normalize_email(decision.email), None)
        if override is None:
            result.append(decision)
        else:
            result.append(AttendanceDecision(decision.email, override.attended, _overridden(override,
                                                                                        decision.explanation)))
    for override in by_email.values():
        result.append(AttendanceDecision(override.email, override.attended,
                                         _overridden(override, "no evidence for this learner")))
    return result


def _overridden(override: AttendanceOverride, evidence: str) -> str:
    verdict = "attended" if override.attended else "not attended"
    return f"{verdict}: set by {override.actor} ({override.reason}); the evidence said: {evidence}"


def decide_from_launches(
    launches: list[Launch], *, opens_at: datetime, ends_at: datetime
) -> list[AttendanceDecision]:
    """One decision per learner who launched, in order of first launch; hosts are not attendees.

    People are told apart by normalised email; each is reported in the spelling of their latest launch.
    """
    first_launch: dict[str, datetime] = {}
    count: dict[str, int] = {}
    spelling: dict[str, str] = {}
    for launch in sorted(launches, key=lambda item: item.clicked_at):
        if launch.role is not Role.ATTENDEE or not opens_at <= launch.clicked_at <= ends_at:
            continue
        first_launch.setdefault(launch.email, launch.clicked_at)
        count[launch.email] = count.get(launch.email, 0) + 1
        spelling[launch.email] = launch.lms_email
    return [
        AttendanceDecision(
            email=spelling[email],
            attended=True,
            explanation=(
                f"launched {count[email]}x, first at {when:%Y-%m-%d %H:%M} UTC, while the class was open "
                f"({opens_at:%H:%M}-{ends_at:%H:%M} UTC); evidence: launch only, the provider reports no attendance"
            ),
        )
        for email, when in first_launch.items()
    ]


def launch_only_state(now: datetime, ends_at: datetime) -> AttendanceState:
    """Launch evidence is provisional until the class ends; after that no click can count any more."""
    return AttendanceState.FINAL if now > ends_at else AttendanceState.PROVISIONAL


# --- intervals ----------------------------------------------------------------------------------------------


def as_utc(moment: datetime) -> datetime:
    """The same instant in UTC. Naive datetimes are taken as UTC, as everything the store keeps is."""
    if moment.tzinfo is UTC:
        return moment
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


_ZERO = timedelta(0)
_START = attrgetter("start")


@dataclass(frozen=True, slots=True)
class Interval:
    """[start, end) in UTC. Zoned datetimes are converted on the way in: Python subtracts two datetimes of the same
    zone by their wall clocks, which is an hour off across a DST change."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is not UTC:
            object.__setattr__(self, "start", as_utc(self.start))
        if self.end.tzinfo is not UTC:
            object.__setattr__(self, "end", as_utc(self.end))


def merge_intervals(intervals: Iterable[Interval]) -> list[Interval]:
    """The union of intervals, sorted; overlapping and touching ones are merged. Zero-length ones add nothing."""
    merged: list[Interval] = []
    run_start: datetime | None = None
    run_end = run_start
    for interval in sorted(intervals, key=_START):
        start, end = interval.start, interval.end
        if end <= start:
            continue
        if run_start is None or run_end is None or start > run_end:
            if run_start is not None and run_end is not None:
                merged.append(Interval(run_start, run_end))
            run_start, run_end = start, end
        elif end > run_end:
            run_end = end
    if run_start is not None and run_end is not None:
        merged.append(Interval(run_start, run_end))
    return merged


def presence_within(intervals: Iterable[Interval], start: datetime, end: datetime) -> timedelta:
    """How long the union of `intervals` covers [start, end]: reconnects and overlapping devices count once.

    One sweep over the intervals sorted by start, extending a run of covered time while the next interval overlaps or
    touches it; a run is clipped to the window when it ends. Only the runs are subtracted, never each interval.
    """
    start, end = as_utc(start), as_utc(end)
    total = _ZERO
    run_start = run_end = start  # the run being swept; starting it at the window's start clips what came before
    for interval in sorted(intervals, key=_START):
        interval_end = interval.end
        if interval_end > run_end:
            interval_start = interval.start
            if interval_start <= run_end:
                run_end = interval_end
            elif interval_end > interval_start:
                if run_start < end:
                    total += (run_end if run_end < end else end) - run_start
                run_start, run_end = interval_start, interval_end
    if run_start < end:
        total += (run_end if run_end < end else end) - run_start
    return total


# --- identity: which LMS learner a provider segment belongs to ------------------------------------------------

# The identity and evidence key every adapter uses for the id a personal link was minted with and the provider
# reports the person by: Zoom's registrant id, BigBlueButton's join userID, a JaaS token's user id, GoTo's
# registrant key.
PERSONAL_ID = "personal_id"

# Strongest first. A personal link's id was minted for one learner; a name tag came from their fallback link; an
# email is only as good as the account the person signed in with; an alias is an admin's statement; a verified email
# is someone who did not launch but whom the provider authenticated with that email (`provider.EMAIL_VERIFIED_BY`):
# credited under that email, because Cornerstone matches GetAttendees' emails against its own roster; a name is a
# name, trusted only when exactly one launched learner carries it.
VERIFIED_EMAIL = "verified_email"
RULES = (PERSONAL_ID, "display_name_tag", "email", "alias", VERIFIED_EMAIL, "unique_name")
WAITING_ROOM_STATUS = "in_waiting_room"


@dataclass(frozen=True, slots=True)
class MatchedSegment:
    """A provider segment tied to an LMS email, with the rule that tied it (one of `RULES`)."""

    email: str
    interval: Interval
    rule: str
    waiting_room: bool = False  # waiting to be admitted; counts only when the policy says so
    verified_by: str = ""  # for VERIFIED_EMAIL: who verified the email ("Zoom"), named in the explanation


@dataclass(frozen=True)
class LaunchIdentity:
    """What the launch ledger knows about one person: how their links identified them to the provider, and the
    names the LMS knows them by (for the weakest rule)."""

    lms_email: str
    personal_ids: frozenset[str]
    name_tags: frozenset[str]
    names: frozenset[str] = frozenset()


@dataclass(frozen=True)
class AmbiguousSegment:
    """A segment that points at more than one learner, or contradicts itself: for a person to review, with why."""

    segment: ParticipantSegment
    reason: str


@dataclass(frozen=True)
class Identification:
    matched: list[MatchedSegment]
    unmatched: list[ParticipantSegment]  # nothing ties them to a learner: hosts, guests, dial-ins
    ambiguous: list[AmbiguousSegment]  # never credited; each says why


_NO_ALIASES: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class _Directory:
    """Everything a segment can be matched against, keyed by normalised LMS email."""

    spelling: dict[str, str]  # the LMS's spelling of each known email (launched learners, roster, alias targets)
    known: frozenset[str]  # launched learners and roster emails
    by_personal_id: dict[str, set[str]]
    by_tag: dict[str, set[str]]
    by_name: dict[str, set[str]]
    aliases: dict[str, str]  # provider email -> LMS email, both normalised
    hosts: frozenset[str] = frozenset()  # never credited by a verified email alone: instructors are no attendees

    def owner_of_email(self, email: str) -> tuple[str, str] | None:
        if email in self.known:
            return email, "email"
        if email in self.aliases:
            return self.aliases[email], "alias"
        return None

    def listed(self, keys: Iterable[str]) -> str:
        return ", ".join(sorted(self.spelling[key] for key in keys))


def _name_key(name: str) -> str:
    return " ".join(name.split()).casefold()


def _directory(people: Mapping[str, LaunchIdentity], aliases: Mapping[str, str],
               roster: Collection[str], hosts: Collection[str] = ()) -> _Directory:
    spelling: dict[str, str] = {}
    by_personal_id: dict[str, set[str]] = {}
    by_tag: dict[str, set[str]] = {}
    by_name: dict[str, set[str]] = {}
    for raw_key, person in people.items():
        key = normalize_email(raw_key)
        spelling[key] = person.lms_email
        for personal_id in person.personal_ids:
            by_personal_id.setdefault(personal_id, set()).add(key)
        for tag in person.name_tags:
            by_tag.setdefault(tag, set()).add(key)
        for name in person.names:
            if name_key := _name_key(name):
                by_name.setdefault(name_key, set()).add(key)
    for email in sorted(roster):  # sorted: which spelling wins must not depend on the collection's order
        spelling.setdefault(normalize_email(email), email.strip())
    known = frozenset(spelling)
    table: dict[str, str] = {}
    for provider_email, lms_email in sorted(aliases.items()):
        source, target = normalize_email(provider_email), normalize_email(lms_email)
        if source and target:
            table[source] = target
            spelling.setdefault(target, lms_email.strip())
    return _Directory(spelling, known, by_personal_id, by_tag, by_name, table,
                      frozenset(normalize_email(email) for email in hosts))


def identify_segments(
    segments: Iterable[ParticipantSegment],
    people: Mapping[str, LaunchIdentity],
    ends_at: datetime,
    *,
    aliases: Mapping[str, str] = _NO_ALIASES,
    roster: Collection[str] = (),
    hosts: Collection[str] = (),
) -> Identification:
    """Tie each segment to one learner by the strongest evidence (see `RULES`), or set it aside.

    `people` are the launched learners by normalised email; `aliases` the connection's table of provider email ->
    LMS email; `roster` the LMS emails the LMS asked about; `hosts` the session's instructors, whom a verified email
    alone never credits. Nothing is fuzzy: a segment that fits two learners, or whose link points at one learner
    while it is signed in as another, goes to `ambiguous` with the reason. An open segment (no leave yet) counts
    until the scheduled end.
    """
    directory = _directory(people, aliases, roster, hosts)
    matched: list[MatchedSegment] = []
    unmatched: list[ParticipantSegment] = []
    ambiguous: list[AmbiguousSegment] = []
    for segment in segments:
        found = _identify(segment, directory)
        if found is None:
            unmatched.append(segment)
        elif isinstance(found, str):
            ambiguous.append(AmbiguousSegment(segment, found))
        else:
            key, rule = found
            end = segment.left_at or max(as_utc(ends_at), as_utc(segment.joined_at))
            verified = rule == VERIFIED_EMAIL
            # A verified email of someone who never launched has no LMS spelling: it is reported as the provider has it.
            spelling = directory.spelling.get(key) or (segment.email or key).strip()
            matched.append(MatchedSegment(spelling, Interval(segment.joined_at, end), rule,
                                          segment.evidence.get("status") == WAITING_ROOM_STATUS,
                                          (segment.email_verified_by or "") if verified else ""))
    return Identification(matched, unmatched, ambiguous)


def match_segments(
    segments: list[ParticipantSegment],
    people: dict[str, LaunchIdentity],
    ends_at: datetime,
    *,
    aliases: Mapping[str, str] = _NO_ALIASES,
    roster: Collection[str] = (),
    hosts: Collection[str] = (),
) -> tuple[list[MatchedSegment], list[ParticipantSegment]]:
    """`identify_segments` as (matched, everything else in input order): ambiguous segments are not matched."""
    found = identify_segments(segments, people, ends_at, aliases=aliases, roster=roster, hosts=hosts)
    set_aside = {id(segment) for segment in found.unmatched} | {id(item.segment) for item in found.ambiguous}
    return found.matched, [segment for segment in segments if id(segment) in set_aside]


def _identify(segment: ParticipantSegment, directory: _Directory) -> tuple[str, str] | str | None:
    """(learner, rule), or the reason the segment is ambiguous, or None when nothing ties it to anyone."""
    email = normalize_email(segment.email) if segment.email else ""
    signed_in = directory.owner_of_email(email) if email else None
    personal_id = str(segment.evidence.get(PERSONAL_ID) or "")
    if personal_id and (owners := directory.by_personal_id.get(personal_id)):
        return _by_link(owners, PERSONAL_ID, f"personal link id {personal_id}", signed_in, email, directory)
    name = segment.display_name or ""
    tagged = {key for word in name.split() for key in directory.by_tag.get(word, ())}
    if tagged:
        return _by_link(tagged, "display_name_tag", f"the name tag in '{name}'", signed_in, email, directory)
    if signed_in is not None:
        return signed_in
    if email and segment.email_verified_by and email not in directory.hosts:
        # Joined without launching (a forwarded link, a calendar entry) but signed in as this email, which the
        # provider verified: as good as the learner's word, and Cornerstone keeps only emails on its roster. A typed
        # email is not verified and falls through: to a unique name, or to review.
        return email, VERIFIED_EMAIL
    named = directory.by_name.get(_name_key(name), set()) if name else set()
    if len(named) == 1:
        return next(iter(named)), "unique_name"
    if named:
        return (f"display name '{name.strip()}' is the name of {len(named)} launched learners "
                f"({directory.listed(named)}); not guessed, assign it by hand")
    return None


def _by_link(owners: set[str], rule: str, clue: str, signed_in: tuple[str, str] | None, email: str,
             directory: _Directory) -> tuple[str, str] | str:
    if len(owners) > 1:
        return f"{clue} belongs to {len(owners)} learners ({directory.listed(owners)}); assign it by hand"
    [owner] = owners
    if signed_in is not None and signed_in[0] != owner:
        # Someone joined through another learner's link while signed in as themselves: crediting either is a guess.
        return (f"{clue} identifies {directory.spelling[owner]}, but the participant signed in as {email}, which is "
                f"{directory.spelling[signed_in[0]]}'s (by {signed_in[1]}); check who attended")
    return owner, rule


# --- policy ---------------------------------------------------------------------------------------------------

PartsRule = Literal["all", "any", "per_part"]
_MAX_MINUTES = 24 * 60

_SETTING_FORMS = {
    "min_percent": "a whole number from 0 to 100, e.g. 75",
    "min_minutes": f"a whole number of minutes from 0 to {_MAX_MINUTES}, e.g. 60, or null for no minutes rule",
    "grace_minutes": f"a whole number of minutes from 0 to {_MAX_MINUTES}, e.g. 10",
    "cap_at_end": "true or false",
    "count_waiting_room": "true or false",
    "parts": '"all", "any" or "per_part"',
}


@dataclass(frozen=True)
class AttendancePolicy:
    """When a learner attended a part.

    Present = the union of their segments from `grace_minutes` before the scheduled start to the scheduled end
    (with `cap_at_end` False, time after the end counts too). Attended when present for at least `min_percent` of
    the scheduled length (capped at 100%), or, when `min_minutes` is set, for at least that many minutes. Waiting-room
    time counts only with `count_waiting_room`.

    Several parts, by `parts`: "all" attended the session when they attended every part; "any" when they attended
    at least one; "per_part" reports each part on its own (for an LMS that records parts) and lists at session
    level only those who attended every part, so a session-only LMS is never over-credited.
    """

    min_percent: int = 75
    grace_minutes: int = 10
    min_minutes: int | None = None
    cap_at_end: bool = True
    count_waiting_room: bool = False
    parts: PartsRule = "all"

    def __post_init__(self) -> None:
        checked = (_setting_problem(item.name, getattr(self, item.name)) for item in fields(self))
        if problems := [problem for problem in checked if problem]:
            raise InvalidInput(_policy_message(problems))

    @classmethod
    def from_settings(cls, settings: Mapping[str, object]) -> AttendancePolicy:
        """The default policy with `settings` applied (e.g. a connection's stored JSON); InvalidInput says what is
        wrong with them."""
        return cls().with_overrides(settings)

    def with_overrides(self, overrides: Mapping[str, object]) -> AttendancePolicy:
        """This policy with some settings replaced (a session's overrides over its connection's policy)."""
        if not isinstance(overrides, Mapping):
            raise InvalidInput(_policy_message([
                f"the settings are a {type(overrides).__name__}; send an object of setting: value pairs, "
                'e.g. {"min_percent": 80}'
            ]))
        unknown = [_unknown_setting(name) for name in overrides if name not in _SETTING_FORMS]
        if unknown:
            raise InvalidInput(_policy_message(unknown))
        changes: dict[str, Any] = dict(overrides)
        return replace(self, **changes)

    def describe(self) -> str:
        """The policy in one line, for consoles and logs."""
        threshold = f"{self.min_percent}%" + ("" if self.min_minutes is None else f" or {self.min_minutes} min")
        return (f"attended at {threshold} of the scheduled time, counted from {self.grace_minutes} min before the "
                f"start {'to the scheduled end' if self.cap_at_end else 'with time after the end'}; waiting room "
                f"{'counts' if self.count_waiting_room else 'does not count'}; parts: {_PARTS_WORDS[self.parts]}")


def _setting_problem(name: str, value: object) -> str | None:
    if name in ("cap_at_end", "count_waiting_room"):
        fits = isinstance(value, bool)
    elif name == "parts":
        fits = isinstance(value, str) and value in get_args(PartsRule)
    elif name == "min_minutes" and value is None:
        fits = True
    else:
        upper = 100 if name == "min_percent" else _MAX_MINUTES
        fits = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= upper
    return None if fits else f"{name} is {_shown(value)} (set it to {_SETTING_FORMS[name]})"


def _unknown_setting(name: object) -> str:
    close = difflib.get_close_matches(str(name), list(_SETTING_FORMS), n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return f"there is no setting {_shown(name)} ({hint}the settings are {', '.join(sorted(_SETTING_FORMS))})"


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _policy_message(problems: list[str]) -> str:
    return "The attendance policy is not valid: " + "; ".join(problems) + "."


# --- decisions ------------------------------------------------------------------------------------------------

_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_PARTS_WORDS = {"all": "every part", "any": "at least one part",
                "per_part": "each part on its own; the session needs every part"}


@dataclass(frozen=True)
class PartWindow:
    """One scheduled part of a session; `name` is how explanations and results refer to it."""

    name: str
    starts_at: datetime
    ends_at: datetime


# A matched segment as the judging sweep reads it: (start, end, rule as the explanation names it, waiting room).
# Plain tuples: they sort by start first, put repeated deliveries of one segment side by side, and cost no object of
# their own; their datetimes are compared, never hashed (hashing a zoned datetime costs more than judging it).
_Span = tuple[datetime, datetime, str, bool]
# What the policy makes of one person's spans in one part: (attended, attended by the percentage, distinct segments,
# the rules that matched them, waiting-room segments left out, time present).
_Judgement = tuple[bool, bool, int, str, int, timedelta]


def _span(start: datetime, end: datetime, *, dated: bool = False) -> str:
    if start.date() != end.date():
        return f"{start:%Y-%m-%d %H:%M}-{end:%Y-%m-%d %H:%M} UTC"
    return f"{start:%Y-%m-%d %H:%M}-{end:%H:%M} UTC" if dated else f"{start:%H:%M}-{end:%H:%M} UTC"


def _spans_by_spelling(matched: Iterable[MatchedSegment]) -> dict[str, list[_Span]]:
    """The segments as spans, grouped by email as spelled: one pass, one tuple per segment."""
    groups: dict[str, list[_Span]] = {}
    group_of = groups.get
    for item in matched:
        interval = item.interval
        rule = item.rule
        if rule == VERIFIED_EMAIL:
            rule = _rule_words(item)
        span = (interval.start, interval.end, rule, item.waiting_room)
        group = group_of(item.email)
        if group is None:
            groups[item.email] = [span]
        else:
            group.append(span)
    return groups


def _people(by_spelling: Mapping[str, list[_Span]], spelling: dict[str, str]) -> dict[str, list[_Span]]:
    """Per person (normalised email), the spans of all their spellings. `spelling` learns one spelling per person,
    the least, so that it is the same whatever order the segments came in (and across the parts it is passed to)."""
    people: dict[str, list[_Span]] = {}
    for email, spans in by_spelling.items():
        key = normalize_email(email)
        known = people.get(key)
        people[key] = spans if known is None else known + spans
        shown = spelling.get(key)
        if shown is None or email < shown:
            spelling[key] = email
    return people


def _judge(people: Mapping[str, list[_Span]], starts_at: datetime, ends_at: datetime,
           policy: AttendancePolicy) -> dict[str, _Judgement]:
    """Per person: what the policy makes of their spans in one scheduled part (sorts the span lists in place).

    One sweep per person over their spans sorted by start: the union of the counted ones inside the window (as
    `presence_within`), the distinct segments (a segment delivered twice, by webhook and report or a retried fetch,
    is one), the rules, and the waiting-room segments left out, all at once.
    """
    starts_at, ends_at = as_utc(starts_at), as_utc(ends_at)
    window_start = starts_at - timedelta(minutes=policy.grace_minutes)
    window_end = ends_at if policy.cap_at_end else _FAR_FUTURE
    # Whole microseconds, not floats: exactly the threshold is attended (29% of an hour is not 28.999...%). Present
    # for min_percent of the scheduled time is present * 100 >= min_percent * scheduled, so at least the microseconds
    # that product needs, rounded up. timedelta.max is never reached: no such rule.
    scheduled = _scheduled(starts_at, ends_at)
    if scheduled > 0:
        needed = timedelta(microseconds=-(-policy.min_percent * scheduled // 100))
    else:
        needed = _ZERO if policy.min_percent == 0 else timedelta.max
    minimum = timedelta.max if policy.min_minutes is None else timedelta(minutes=policy.min_minutes)
    count_waiting = policy.count_waiting_room
    judged: dict[str, _Judgement] = {}
    for key, spans in people.items():
        spans.sort()
        first_rule = spans[0][2]
        rules: set[str] | None = None
        previous: _Span | None = None
        repeated = waiting = 0
        present = _ZERO
        run_start = run_end = window_start  # the run of covered time being swept; the window's start clips it
        # A repeated delivery of a segment sorts right after its twin, which already took the run to its end (or was
        # empty too): repeats are looked for only among the spans that add nothing, and among the waiting-room spans
        # that are left out.
        for span in spans:
            start, end, rule, waiting_room = span
            if rule is not first_rule:  # most people are matched by one rule
                if rules is None:
                    rules = {first_rule}
                rules.add(rule)
            if waiting_room and not count_waiting:
                if span == previous:
                    repeated += 1
                else:
                    waiting += 1
                previous = span
                continue
            if end > run_end:
                if start <= run_end:  # overlaps or touches the run: extends it
                    run_end = end
                elif end > start:  # after a gap: the run so far is done, and counts as far as the window goes
                    if run_start < window_end:
                        present += (run_end if run_end < window_end else window_end) - run_start
                    run_start, run_end = start, end
                elif span == previous:  # empty (it ends before it starts), and repeated
                    repeated += 1
            elif span == previous:  # inside the run, and repeated
                repeated += 1
            previous = span
        if run_start < window_end:
            present += (run_end if run_end < window_end else window_end) - run_start
        by_percent = present >= needed
        judged[key] = (by_percent or present >= minimum, by_percent, len(spans) - repeated,
                       first_rule if rules is None else ", ".join(sorted(rules)), waiting, present)
    return judged


def _scheduled(starts_at: datetime, ends_at: datetime) -> int:
    """A part's scheduled length in microseconds (zero or less for a part that ends before it starts)."""
    return (as_utc(ends_at) - as_utc(starts_at)) // _MICROSECOND


def _percent(present: timedelta, scheduled: int) -> int:
    """`present` as a share of `scheduled` microseconds, at most 100, rounded down so that an explanation never shows
    the threshold for a miss."""
    if scheduled <= 0:
        return 0
    percent = ((present.days * 86_400 + present.seconds) * 1_000_000 + present.microseconds) * 100 // scheduled
    return percent if percent < 100 else 100


def _rule_words(item: MatchedSegment) -> str:
    """The rule as an explanation names it; a verified email says who verified it and that there was no launch."""
    if item.rule == VERIFIED_EMAIL:
        return f"{VERIFIED_EMAIL} (email verified by {item.verified_by or 'the provider'}, no launch)"
    return item.rule


def _explainer(starts_at: datetime, ends_at: datetime, policy: AttendancePolicy) -> Callable[[_Judgement], str]:
    """What every explanation for one part says alike, worked out once per part."""
    window = (f"{_span(as_utc(starts_at), as_utc(ends_at))} (from {policy.grace_minutes} min before the start"
              f"{'' if policy.cap_at_end else '; time after the end counts, at most 100%'})")
    threshold = f"{policy.min_percent}%" + ("" if policy.min_minutes is None else f" or {policy.min_minutes} min")
    # The end of every explanation, per outcome: "% of <window>; threshold <threshold>: <outcome>".
    by_percent_end, by_minutes_end, missed_end = (f"% of {window}; threshold {threshold}: {outcome}" for outcome in (
        "attended", f"attended by the {policy.min_minutes}-minute rule", "not attended"))
    scheduled = _scheduled(starts_at, ends_at)

    def explain(judgement: _Judgement) -> str:
        attended, by_percent, segments, rules, waiting, present = judgement
        excluded = f" ({waiting} in the waiting room, not counted)" if waiting else ""
        outcome = by_percent_end if by_percent else by_minutes_end if attended else missed_end
        minutes = present.days * 1440 + present.seconds // 60  # whole minutes, rounded down
        return (f"{segments} segment(s) matched by {rules}{excluded}; present {minutes} min = "
                f"{_percent(present, scheduled)}{outcome}")

    return explain


def decide_from_segments(
    matched: list[MatchedSegment], *, starts_at: datetime, ends_at: datetime, policy: AttendancePolicy
) -> list[AttendanceDecision]:
    """One decision per matched person (emails compared case-insensitively), sorted by email, with the calculation
    spelled out. The result depends only on the set of segments: not on their order, not on duplicates."""
    spelling: dict[str, str] = {}
    judged = _judge(_people(_spans_by_spelling(matched), spelling), starts_at, ends_at, policy)
    explain = _explainer(starts_at, ends_at, policy)
    return [_explained_later(spelling[key], (judgement := judged[key])[0], explain, judgement)
            for key in sorted(judged, key=spelling.__getitem__)]


def rolled_up(outcomes: Sequence[bool], rule: PartsRule) -> bool:
    """A multi-part session attended, from whether each part was: `any` part, else every part ("all", and
    "per_part" at session level, so a session-only LMS is never over-credited)."""
    return any(outcomes) if rule == "any" else all(outcomes)


@dataclass(frozen=True)
class SessionDecisions:
    """`session`: one decision per learner for the whole session, combined by the policy's `parts` rule.
    `by_part`: per part name, one decision per learner seen in any part (absent from a part = not attended)."""

    session: list[AttendanceDecision]
    by_part: dict[str, list[AttendanceDecision]]


def decide_session(
    parts: Sequence[PartWindow], matched_by_part: Mapping[str, Sequence[MatchedSegment]], policy: AttendancePolicy
) -> SessionDecisions:
    """Decide every part, then the session as the policy's `parts` rule says; each explanation names every part."""
    names = [part.name for part in parts]
    if not parts or len(set(names)) != len(names):
        raise ValueError(f"parts must be a non-empty list with distinct names, got {names!r}")
    if stray := sorted(set(matched_by_part) - set(names)):
        raise ValueError(f"segments for parts that are not scheduled: {stray!r}")
    spelling: dict[str, str] = {}
    people = {part.name: _people(_spans_by_spelling(matched_by_part.get(part.name, ())), spelling) for part in parts}
    judged = {part.name: _judge(people[part.name], part.starts_at, part.ends_at, policy) for part in parts}
    explainers = {part.name: _explainer(part.starts_at, part.ends_at, policy) for part in parts}
    by_part: dict[str, list[AttendanceDecision]] = {}
    session: list[AttendanceDecision] = []
    for key in sorted(spelling, key=spelling.__getitem__):
        outcomes: list[bool] = []
        summary: list[str] = []
        for part in parts:
            judgement = judged[part.name].get(key)
            span = _span(as_utc(part.starts_at), as_utc(part.ends_at), dated=True)
            if judgement is None:
                attended, explanation = False, f"no segment matched in this part ({span}): not attended"
                summary.append(f"{part.name} ({span}): not attended, no segment")
            else:
                attended = judgement[0]
                explanation = explainers[part.name](judgement)
                summary.append(f"{part.name} ({span}): {'attended' if attended else 'not attended'}, "
                               f"{_percent(judgement[5], _scheduled(part.starts_at, part.ends_at))}%")
            outcomes.append(attended)
            by_part.setdefault(part.name, []).append(AttendanceDecision(spelling[key], attended, explanation))
        attended_session = rolled_up(outcomes, policy.parts)
        session.append(AttendanceDecision(spelling[key], attended_session, (
            f"{sum(outcomes)} of {len(parts)} part(s) attended; rule: {_PARTS_WORDS[policy.parts]}: "
            f"{'attended' if attended_session else 'not attended'} ({'; '.join(summary)})")))
    return SessionDecisions(session=session, by_part={name: by_part.get(name, []) for name in names})


# --- the ledger ------------------------------------------------------------------------------------------------

SOURCES = ("report", "webhook")  # stronger first: a provider's final report beats what its live events said


@dataclass(frozen=True)
class LedgerSegment:
    """A segment as the attendance ledger keeps it: from which source, under which stable key."""

    source: str
    segment: ParticipantSegment

    @property
    def key(self) -> str:
        return segment_key(self.segment)


@dataclass(frozen=True)
class Review:
    """A segment no rule could credit, for a person to look at: `ambiguous` (with why) or `unmatched`."""

    kind: str
    reason: str
    segment: ParticipantSegment


def segment_key(segment: ParticipantSegment) -> str:
    """Stable across deliveries and re-reads of one join: the meeting run, who, when they joined (and the name they
    showed, so two guests without ids who join in the same second stay two)."""
    joined = as_utc(segment.joined_at).isoformat()
    return f"{segment.instance}|{segment.participant_key}|{joined}|{segment.display_name or ''}"[:500]


def merge_into_ledger(stored: Iterable[LedgerSegment], fresh: Iterable[LedgerSegment]) -> list[LedgerSegment]:
    """The ledger after `fresh` arrives: new segments added, known ones updated (a leave learned later), none
    removed. Idempotent: merging the same delivery twice changes nothing."""
    ledger = {(item.source, item.key): item for item in stored}
    for item in fresh:
        ledger[(item.source, item.key)] = item
    return list(ledger.values())


def choose_evidence(ledger: Iterable[LedgerSegment]) -> list[ParticipantSegment]:
    """Per run of the meeting, the strongest source that has anything for it: the provider's report where it exists
    (it knows leaves a lost webhook never told), live events for runs the report does not cover (yet). Runs are
    kept apart, so a later report of one run never hides the segments of another."""
    by_instance: dict[str, dict[str, list[ParticipantSegment]]] = {}
    for item in ledger:
        by_instance.setdefault(item.segment.instance, {}).setdefault(item.source, []).append(item.segment)
    chosen: list[ParticipantSegment] = []
    for instance in sorted(by_instance):
        sources = by_instance[instance]
        best = next((source for source in SOURCES if sources.get(source)), None)
        if best is not None:
            chosen.extend(sorted(sources[best], key=lambda s: (as_utc(s.joined_at), s.participant_key)))
    return chosen
