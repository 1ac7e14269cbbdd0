"""Alembic environment: batch mode + naming convention so one set of migrations runs on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import context

from viltbridge.store.db import sync_engine
from viltbridge.store.tables import Base

config = context.config
database_url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
if not database_url:
    from viltbridge.config import get_settings

    database_url = get_settings().database_url

engine = sync_engine(database_url)
try:
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch mode rebuilds a table by copying and dropping it; with foreign keys on, dropping `sessions`
            # would cascade-delete every launch. Off for the migration (it must be set outside a transaction).
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                          compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
finally:
    engine.dispose()
