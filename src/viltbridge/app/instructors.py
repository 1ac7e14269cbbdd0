"""Instructors: provisioned at the provider and recorded; an email change follows them into their sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from viltbridge.app.uow import unit_of_work
from viltbridge.core.emails import checked_email
from viltbridge.core.errors import InvalidInput
from viltbridge.core.models import Connection, Instructor
from viltbridge.core.ports import Store
from viltbridge.core.provider import InstructorSpec, Provider

if TYPE_CHECKING:
    from viltbridge.app.context import AppContext


async def add_instructor(
    store: Store, provider: Provider, connection: Connection, email: str, first_name: str, last_name: str
) -> Instructor:
    """Provision at the provider and record; adding a known email updates it (the LMS may retry)."""
    email = checked_email(email, field="Email")
    return await update_instructor(store, provider, connection, email, email, first_name, last_name, True)


async def update_instructor(
    store: Store,
    provider: Provider,
    connection: Connection,
    old_email: str,
    new_email: str,
    first_name: str,
    last_name: str,
    is_active: bool | None,
) -> Instructor:
    old_email = checked_email(old_email, field="OldEmail")
    new_email = checked_email(new_email, field="NewEmail")
    for email in sorted({old_email, new_email}):  # sorted: two renames in opposite directions cannot deadlock
        await store.lock(f"instructor:{connection.id}:{email}")
    current = await store.find_instructor(connection.id, old_email)
    if old_email != new_email:
        taken = await store.find_instructor(connection.id, new_email)
        if taken is not None and current is not None:
            raise InvalidInput(
                f"NewEmail {new_email} already belongs to another instructor of this integration; "
                "pick a different email or deactivate that instructor first."
            )
        current = current or taken
    active = current.active if (current is not None and is_active is None) else (is_active is not False)
    spec = InstructorSpec(email=new_email, first_name=first_name, last_name=last_name, active=active,
                          provider_user_id=current.provider_user_id if current else None)
    # An update for an instructor we never saw creates it: a lost AddInstructor must not strand them.
    provisioned = await (
        provider.update_instructor(old_email, spec) if current else provider.provision_instructor(spec)
    )
    instructor = current or Instructor(connection_id=connection.id, email=new_email, first_name=first_name,
                                       last_name=last_name)
    instructor.email, instructor.first_name, instructor.last_name = new_email, first_name, last_name
    instructor.active = active
    instructor.provider_user_id = provisioned.provider_user_id
    instructor.provider_data = provisioned.data
    saved = await store.save_instructor(instructor)
    if old_email != new_email:
        await store.rename_session_instructor(connection.id, old_email, new_email)
    return saved


async def add(ctx: AppContext, connection: Connection, email: str, first_name: str, last_name: str) -> Instructor:
    """AddInstructor, in its own unit of work."""
    async with unit_of_work(ctx) as work:
        return await add_instructor(work.store, ctx.providers.for_connection(connection), connection, email,
                                    first_name, last_name)


async def update(ctx: AppContext, connection: Connection, old_email: str, new_email: str, first_name: str,
                 last_name: str, is_active: bool | None) -> Instructor:
    """UpdateInstructor, in its own unit of work."""
    async with unit_of_work(ctx) as work:
        return await update_instructor(work.store, ctx.providers.for_connection(connection), connection, old_email,
                                       new_email, first_name, last_name, is_active)

