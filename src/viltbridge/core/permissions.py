"""Who may do what in the console. Roles mirror the Cornerstone permissions a learning admin already holds, so the
person who may manage the integration in the LMS is the one who may manage it here."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Permission(StrEnum):
    VIEW_CONNECTIONS = "view connections"
    CONFIGURE_CONNECTIONS = "configure connections"  # settings and vendor options
    MANAGE_INTEGRATIONS = "manage integrations"  # create, activate, deactivate, rotate secrets and credentials
    VIEW_SESSIONS = "view sessions"  # every session of every connection
    CANCEL_SESSIONS = "cancel sessions"
    MANAGE_ROSTER = "manage roster"  # attendance review, overrides with a reason, re-sync, dead jobs
    OWN_SESSIONS = "own sessions"  # an instructor's own sessions, calendar and feed


class ConsoleRole(StrEnum):
    """Named as in Cornerstone's security roles."""

    INTEGRATIONS_MANAGE = "integrations-manage"  # "Integrations - Manage"
    VENDORS_CREATE = "vendors-create"  # "Vendors - Create"
    VENDORS_UPDATE = "vendors-update"  # "Vendors - Update"
    VENDORS_VIEW = "vendors-view"  # "Vendors - View"
    SESSIONS_CANCEL = "sessions-cancel"  # "Sessions - Cancel"
    ROSTER_MANAGE = "roster-manage"  # "Roster - Manage"
    INSTRUCTOR = "instructor"


ROLE_PERMISSIONS: dict[ConsoleRole, frozenset[Permission]] = {
    ConsoleRole.INTEGRATIONS_MANAGE: frozenset({Permission.MANAGE_INTEGRATIONS, Permission.CONFIGURE_CONNECTIONS,
                                                Permission.VIEW_CONNECTIONS, Permission.VIEW_SESSIONS}),
    ConsoleRole.VENDORS_CREATE: frozenset({Permission.CONFIGURE_CONNECTIONS, Permission.VIEW_CONNECTIONS}),
    ConsoleRole.VENDORS_UPDATE: frozenset({Permission.CONFIGURE_CONNECTIONS, Permission.VIEW_CONNECTIONS}),
    ConsoleRole.VENDORS_VIEW: frozenset({Permission.VIEW_CONNECTIONS}),
    ConsoleRole.SESSIONS_CANCEL: frozenset({Permission.CANCEL_SESSIONS, Permission.VIEW_SESSIONS}),
    ConsoleRole.ROSTER_MANAGE: frozenset({Permission.MANAGE_ROSTER, Permission.VIEW_SESSIONS}),
    ConsoleRole.INSTRUCTOR: frozenset({Permission.OWN_SESSIONS}),
}


def parse_roles(names: Iterable[str]) -> tuple[ConsoleRole, ...]:
    """Roles from their names; ValueError naming the unknown ones and the known ones."""
    roles, unknown = [], []
    for name in names:
        try:
            roles.append(ConsoleRole(name.strip().lower()))
        except ValueError:
            unknown.append(name)
    if unknown:
        raise ValueError(f"Unknown role(s): {', '.join(unknown)}. Roles are: "
                         f"{', '.join(role.value for role in ConsoleRole)}.")
    if not roles:
        raise ValueError(f"Give at least one role: {', '.join(role.value for role in ConsoleRole)}.")
    return tuple(dict.fromkeys(roles))


def permissions_of(roles: Iterable[ConsoleRole]) -> frozenset[Permission]:
    granted: set[Permission] = set()
    for role in roles:
        granted |= ROLE_PERMISSIONS[role]
    return frozenset(granted)
