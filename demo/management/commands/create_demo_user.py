"""Create the demo user once and print its password on every run.

The password is kept in the file ``DEMO_PASSWORD_FILE`` names (in the demo's
var folder), readable only by its owner, so every start of the demo can print
it again. ``--reset`` or ``--password`` sets a new one.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = (
        "Create the user the demo signs in with, if missing, and print its password. "
        "An existing user keeps its password unless --reset or --password is given."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--username", default="demo", help="user name (default: demo)"
        )
        parser.add_argument(
            "--password",
            help="password to set (default: a new random one, printed)",
        )
        parser.add_argument(
            "--reset",
            action="store_true",
            help="give an existing user a new random password",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"]
        user, created = get_user_model().objects.get_or_create(username=username)
        stored = _read_passwords().get(username)
        if not (created or options["reset"] or options["password"]):
            self._print_existing(user, username, stored)
            return

        password = options["password"] or secrets.token_urlsafe(12)
        user.set_password(password)
        user.save()
        _store_password(username, password)
        action = "Created" if created else "Set a new password for"
        self.stdout.write(f"{action} the demo user {username!r}.")
        self.stdout.write(f"Sign in as {username!r} with the password: {password}")

    def _print_existing(
        self, user: AbstractBaseUser, username: str, stored: str | None
    ) -> None:
        if stored is not None and user.check_password(stored):
            self.stdout.write(f"Sign in as {username!r} with the password: {stored}")
            return
        self.stdout.write(
            f"The demo user {username!r} exists, but its password is not stored "
            "here: sign in with the password printed when it was set, or run "
            f"'.venv/bin/python manage.py create_demo_user --username {username} "
            "--reset' for a new one."
        )


def _password_file() -> Path | None:
    configured = getattr(settings, "DEMO_PASSWORD_FILE", None)
    return Path(configured) if configured else None


def _read_passwords() -> dict[str, str]:
    path = _password_file()
    if path is None or not path.exists():
        return {}
    try:
        passwords = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CommandError(
            f"cannot read the demo passwords in {str(path)!r}: delete the file "
            "and run the command with --reset"
        ) from exc
    return passwords if isinstance(passwords, dict) else {}


def _store_password(username: str, password: str) -> None:
    path = _password_file()
    if path is None:
        return
    passwords = {**_read_passwords(), username: password}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(json.dumps(passwords, indent=2) + "\n", encoding="utf-8")
