"""The benchmark's database: created when missing, migrated, with the bench user."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from bench.settings import BENCH_USERNAME


def ensure_database(url: str) -> None:
    """Create the database ``url`` names unless it exists; other databases are
    never touched."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
        if not exists:
            connection.execute(
                sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            )


def drop_database(url: str) -> None:
    """Drop the database ``url`` names; for the throw-away database of a smoke run."""
    parts = urlsplit(url)
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    name = parts.path.lstrip("/")
    with psycopg.connect(maintenance, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)
            )
        )


def prepare() -> str:
    """Migrate, empty the task tables, and return a session id of the bench user.

    Django must be set up with ``bench.settings`` before this is called.
    """
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from django_integration.models import MigrationLog, MigrationTask

    call_command("migrate", interactive=False, verbosity=0)
    tables = [MigrationLog._meta.db_table, MigrationTask._meta.db_table]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(map(connection.ops.quote_name, tables))}")

    user, _ = get_user_model().objects.get_or_create(
        username=BENCH_USERNAME, defaults={"is_superuser": True, "is_staff": True}
    )
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value
