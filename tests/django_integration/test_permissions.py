"""Who may watch, cancel, choose targets and see which tasks."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser, Permission, User
from django.contrib.contenttypes.models import ContentType

from django_integration import permissions
from django_integration.models import MigrationTask
from tests.django_integration.web_helpers import CANCEL, WATCH, make_task, make_user

pytestmark = pytest.mark.django_db


def test_owner_may_watch_and_cancel():
    owner = make_user()
    task = make_task(owner)

    assert permissions.can_watch(owner, task)
    assert permissions.can_cancel(owner, task)


def test_other_user_may_not_watch_or_cancel():
    task = make_task(make_user())
    other = make_user()

    assert not permissions.can_watch(other, task)
    assert not permissions.can_cancel(other, task)


@pytest.mark.parametrize("user", [None, AnonymousUser()])
def test_anonymous_may_do_nothing(user):
    task = make_task(None)

    assert not permissions.can_watch(user, task)
    assert not permissions.can_cancel(user, task)
    assert not permissions.can_choose_target(user)
    assert not permissions.visible_tasks(user).exists()


def test_watch_permission_does_not_grant_cancel():
    task = make_task(make_user())
    watcher = make_user(WATCH)

    assert permissions.can_watch(watcher, task)
    assert not permissions.can_cancel(watcher, task)


def test_cancel_permission_does_not_grant_watch():
    task = make_task(make_user())
    canceller = make_user(CANCEL)

    assert permissions.can_cancel(canceller, task)
    assert not permissions.can_watch(canceller, task)


def test_superuser_may_do_everything():
    task = make_task(make_user())
    root = User.objects.create_superuser("root-perm", "root@example.com", None)

    assert permissions.can_watch(root, task)
    assert permissions.can_cancel(root, task)
    assert permissions.can_choose_target(root)


def test_choose_target_needs_permission():
    content_type = ContentType.objects.get_for_model(MigrationTask)
    Permission.objects.get_or_create(
        codename="choose_migration_target",
        content_type=content_type,
        defaults={"name": "Can choose the job a migration runs"},
    )

    assert not permissions.can_choose_target(make_user())
    assert permissions.can_choose_target(
        make_user("django_integration.choose_migration_target")
    )


def test_watch_permission_setting_is_used(settings):
    task = make_task(make_user())
    watcher = make_user(CANCEL)
    settings.MIGRATION_SUPERVISOR = {
        **settings.MIGRATION_SUPERVISOR,
        "WATCH_PERMISSION": CANCEL,
    }

    assert permissions.watch_permission() == CANCEL
    assert permissions.can_watch(watcher, task)
    assert not permissions.can_watch(make_user(WATCH), task)


def test_visible_tasks_own_or_all():
    owner = make_user()
    own = make_task(owner)
    other = make_task(make_user())

    assert list(permissions.visible_tasks(owner)) == [own]
    assert set(permissions.visible_tasks(make_user(WATCH))) == {own, other}
    assert not permissions.visible_tasks(make_user()).exists()
