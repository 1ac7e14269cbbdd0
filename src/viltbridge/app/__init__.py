"""The application: the use cases, and `AppContext` (context.py), what they run with.

The use cases behind the LMS contract (instructors.py, sessions.py per part, launches.py, attendance.py) take the
store, the connection's provider and a clock; none knows HTTP or SQL. Semantics follow
`cornerstone-vilt-contract.md` §5: every write is idempotent (a duplicate POST updates, a PUT of an unknown session
creates, a second DELETE succeeds), meetings are updated in place, launches resolve at click time.

What an operator does outside the contract (connections.py, console_users.py, attendance_admin.py) is sync, over a
SQLAlchemy Session, for the CLI and the console.
"""
