"""Create the demo user, or give it a new password, and print the password."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = (
        "Create the user the demo signs in with, or reset its password, and print "
        "the password."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--username", default="demo", help="user name (default: demo)"
        )
        parser.add_argument(
            "--password",
            help="password to set (default: a new random one, printed)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"]
        password = options["password"] or secrets.token_urlsafe(12)
        user, created = get_user_model().objects.get_or_create(username=username)
        user.set_password(password)
        user.save()
        action = "Created" if created else "Reset the password of"
        self.stdout.write(f"{action} the demo user {username!r}.")
        self.stdout.write(f"Sign in as {username!r} with the password: {password}")
