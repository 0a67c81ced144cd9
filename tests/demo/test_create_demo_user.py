"""The command that creates the demo user once and prints its password."""

from __future__ import annotations

import io
import json
import stat

import pytest
from django.core.management import call_command


@pytest.fixture
def password_file(settings, tmp_path):
    settings.DEMO_PASSWORD_FILE = tmp_path / "var" / "demo_password.json"
    return settings.DEMO_PASSWORD_FILE


def create_demo_user(*args):
    out = io.StringIO()
    call_command("create_demo_user", *args, stdout=out)
    return out.getvalue()


def printed_password(output):
    marker = "with the password: "
    assert marker in output, output
    return output.split(marker, 1)[1].strip()


def test_first_run_creates_and_stores(db, password_file, django_user_model):
    output = create_demo_user()
    password = printed_password(output)
    assert output.startswith("Created the demo user 'demo'.")
    assert django_user_model.objects.get(username="demo").check_password(password)
    assert json.loads(password_file.read_text()) == {"demo": password}
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600


def test_second_run_keeps_password(db, password_file, django_user_model):
    first = printed_password(create_demo_user())
    hashed = django_user_model.objects.get(username="demo").password
    output = create_demo_user()
    assert printed_password(output) == first
    assert "Created" not in output
    assert django_user_model.objects.get(username="demo").password == hashed


def test_reset_sets_new_password(db, password_file, django_user_model):
    first = printed_password(create_demo_user())
    output = create_demo_user("--reset")
    second = printed_password(output)
    assert output.startswith("Set a new password for the demo user 'demo'.")
    assert second != first
    assert django_user_model.objects.get(username="demo").check_password(second)
    assert json.loads(password_file.read_text()) == {"demo": second}


def test_given_password_stored(db, password_file, django_user_model):
    create_demo_user("--username", "ada", "--password", "correct horse")
    assert django_user_model.objects.get(username="ada").check_password("correct horse")
    assert printed_password(create_demo_user("--username", "ada")) == "correct horse"


def test_unknown_password_left_alone(db, password_file, django_user_model):
    user = django_user_model.objects.create_user("demo", password="chosen-earlier")
    output = create_demo_user()
    assert "its password is not stored here" in output
    assert "create_demo_user --username demo --reset" in output
    user.refresh_from_db()
    assert user.check_password("chosen-earlier")
    assert not password_file.exists()
