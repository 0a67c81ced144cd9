"""The HTTP views: start, cancel, status, the task page and the task list."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from django_integration.models import MigrationTask
from tests.django_integration.web_helpers import (
    CANCEL,
    WATCH,
    make_task,
    make_user,
)

COUNT_JOB = "tests.django_integration.jobs:count_to"
SLEEP_JOB = "tests.django_integration.jobs:sleep_forever"
START_URL = "/migrations/start/"


def task_url(task_id: str, suffix: str = "") -> str:
    return f"/migrations/tasks/{task_id}/{suffix}"


def client_for(user: User | None, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    if user is not None:
        client.force_login(user)
    return client


def csrf_token(client: Client, task_id: str) -> str:
    """Load the task page, as a browser does, and return the CSRF cookie's token."""
    assert client.get(task_url(task_id)).status_code == 200
    return client.cookies["csrftoken"].value


def post_json(client: Client, url: str, body: object, **headers: str):
    return client.post(
        url, data=json.dumps(body), content_type="application/json", headers=headers
    )


def error_of(response) -> str:
    assert response["Content-Type"] == "application/json", response.content
    return response.json()["error"]


@pytest.fixture
def default_target(settings) -> str:
    settings.MIGRATION_SUPERVISOR = {
        **settings.MIGRATION_SUPERVISOR,
        "TARGET": COUNT_JOB,
    }
    return COUNT_JOB


@pytest.fixture
def superuser(db) -> User:
    return User.objects.create_superuser("root-user", "root@example.com", None)


# Starting.


def test_start_json_generates_task_id(runtime, default_target):
    owner = make_user()
    client = client_for(owner)

    response = post_json(client, START_URL, {"args": [5]})

    assert response.status_code == 202
    body = response.json()
    assert re.fullmatch(r"[0-9a-f]{32}", body["task_id"])
    assert body["status"]["state"] in ("queued", "running", "succeeded")
    assert body["urls"]["page"] == task_url(body["task_id"])
    assert body["urls"]["websocket"] == f"/ws/migration/{body['task_id']}/"
    task = MigrationTask.objects.get(task_id=body["task_id"])
    assert task.owner == owner
    assert task.target == COUNT_JOB
    assert task.arguments["args"] == [5]


def test_start_form_redirects_to_page(runtime, default_target, unique_id):
    client = client_for(make_user())

    response = client.post(START_URL, {"task_id": unique_id, "args": "[3]"})

    assert response.status_code == 302
    assert response["Location"] == task_url(unique_id)
    runtime.supervisor().wait(unique_id, timeout=60)
    assert client.get(task_url(unique_id, "status/")).json()["state"] == "succeeded"


def test_start_requires_csrf_token(runtime, default_target, unique_id):
    owner = make_user()
    client = client_for(owner, csrf=True)

    refused = post_json(client, START_URL, {"task_id": unique_id})
    token = csrf_token(client, make_task(owner).task_id)
    accepted = post_json(client, START_URL, {"task_id": unique_id}, X_CSRFToken=token)

    assert refused.status_code == 403
    assert accepted.status_code == 202


def test_start_target_needs_permission(db, default_target):
    client = client_for(make_user())

    response = post_json(client, START_URL, {"target": SLEEP_JOB})

    assert response.status_code == 403
    message = error_of(response)
    assert repr(SLEEP_JOB) in message
    assert "django_integration.choose_migration_target" in message
    assert "leave target out" in message
    assert not MigrationTask.objects.exists()


def test_start_target_allowed_for_superuser(runtime, superuser, unique_id):
    client = client_for(superuser)

    response = post_json(
        client, START_URL, {"task_id": unique_id, "target": COUNT_JOB, "args": [2]}
    )

    assert response.status_code == 202
    assert MigrationTask.objects.get(task_id=unique_id).target == COUNT_JOB


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"task_id": "bad id!"}, "invalid task_id 'bad id!'"),
        ({"task_id": 7}, "invalid task_id 7"),
        ({"args": "[1,"}, "invalid JSON in args"),
        ({"args": {"a": 1}}, "invalid args of type dict: send a JSON array"),
        ({"kwargs": [1]}, "invalid kwargs of type list: send a JSON object"),
        ({"colour": "red"}, "unknown field 'colour'"),
        ([1, 2], "invalid JSON body of type list"),
    ],
)
def test_start_bad_json_input_named(db, default_target, body, expected):
    client = client_for(make_user())

    response = post_json(client, START_URL, body)

    assert response.status_code == 400
    assert expected in error_of(response)


def test_start_body_not_json(db, default_target):
    client = client_for(make_user())

    response = client.post(START_URL, data="{oops", content_type="application/json")

    assert response.status_code == 400
    assert "invalid JSON body" in error_of(response)


def test_start_bad_form_input_shows_html_error(db, default_target):
    client = client_for(make_user())

    response = client.post(START_URL, {"args": "not json"})

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    assert b"invalid JSON in args" in response.content


def test_start_existing_task_id_conflicts(runtime, default_target):
    owner = make_user()
    task = make_task(owner, state="succeeded")

    response = post_json(client_for(owner), START_URL, {"task_id": task.task_id})

    assert response.status_code == 409
    assert repr(task.task_id) in error_of(response)


def test_start_without_default_target(db):
    response = post_json(client_for(make_user()), START_URL, {})

    assert response.status_code == 503
    assert "MIGRATION_SUPERVISOR['TARGET']" in error_of(response)


def test_start_anonymous_refused(db, default_target):
    json_response = post_json(Client(), START_URL, {})
    form_response = Client().post(START_URL, {})

    assert json_response.status_code == 403
    assert "log in" in error_of(json_response)
    assert form_response.status_code == 302
    assert form_response["Location"].startswith("/accounts/login/")


def test_start_get_not_allowed(db):
    response = client_for(make_user()).get(START_URL)

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert "method 'GET' is not allowed here: use POST" in error_of(response)


# Cancelling.


def test_cancel_with_csrf_stops_running_job(runtime, unique_id):
    from django_integration import start_migration

    owner = make_user()
    start_migration(unique_id, SLEEP_JOB, owner=owner)
    client = client_for(owner, csrf=True)
    token = csrf_token(client, unique_id)

    refused = client.post(task_url(unique_id, "cancel/"))
    response = client.post(
        task_url(unique_id, "cancel/"), headers={"X-CSRFToken": token}
    )
    status = runtime.supervisor().wait(unique_id, timeout=60)

    assert refused.status_code == 403
    assert response.status_code == 200
    assert response.json()["cancelled"] is True
    assert status.state == "cancelled"


def test_cancel_other_users_task_forbidden(db):
    task = make_task(make_user())

    response = client_for(make_user(WATCH)).post(task_url(task.task_id, "cancel/"))

    assert response.status_code == 403
    message = error_of(response)
    assert "you may not cancel" in message
    assert CANCEL in message
    task.refresh_from_db()
    assert task.cancel_requested_at is None


def test_cancel_permission_allows_other_user(db):
    task = make_task(make_user())
    canceller = make_user(CANCEL)

    response = client_for(canceller).post(task_url(task.task_id, "cancel/"))

    assert response.status_code == 200
    assert response.json()["cancelled"] is True
    task.refresh_from_db()
    assert task.cancelled_by == canceller


@pytest.mark.parametrize(
    ("task_id", "status", "expected"),
    [
        ("no-such-task", 404, "no migration task 'no-such-task'"),
        ("bad.id", 400, "invalid task id 'bad.id'"),
    ],
)
def test_cancel_bad_task_id(db, task_id, status, expected):
    response = client_for(make_user()).post(task_url(task_id, "cancel/"))

    assert response.status_code == status
    assert expected in error_of(response)


def test_cancel_ended_task_conflicts(db):
    owner = make_user()
    task = make_task(owner, state="succeeded")

    response = client_for(owner).post(task_url(task.task_id, "cancel/"))

    assert response.status_code == 409
    assert response.json()["cancelled"] is False
    assert "already ended (succeeded)" in response.json()["message"]


def test_cancel_anonymous_and_get_refused(db):
    task = make_task(make_user())

    anonymous = Client().post(task_url(task.task_id, "cancel/"))
    get = client_for(task.owner).get(task_url(task.task_id, "cancel/"))

    assert anonymous.status_code == 403
    assert "log in" in error_of(anonymous)
    assert get.status_code == 405
    assert get["Allow"] == "POST"


# Status.


def test_status_for_owner(db):
    owner = make_user()
    task = make_task(owner, progress=40, message_count=7)

    response = client_for(owner).get(task_url(task.task_id, "status/"))

    assert response.status_code == 200
    body = response.json()
    assert body["task_id"] == task.task_id
    assert body["state"] == "running"
    assert body["progress"] == 40
    assert body["message_count"] == 7


def test_status_access_rules(db):
    task = make_task(make_user())
    url = task_url(task.task_id, "status/")

    assert client_for(make_user()).get(url).status_code == 403
    assert client_for(make_user(WATCH)).get(url).status_code == 200
    assert Client().get(url).status_code == 403


@pytest.mark.parametrize(
    ("task_id", "status"), [("missing-task", 404), ("x" * 65, 400), ("a b", 400)]
)
def test_status_bad_task_id(db, task_id, status):
    response = client_for(make_user()).get(task_url(task_id, "status/"))

    assert response.status_code == status
    assert "task" in error_of(response)


def test_status_post_not_allowed(db):
    owner = make_user()
    task = make_task(owner)

    response = client_for(owner).post(task_url(task.task_id, "status/"))

    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"


# Pages.


def test_page_has_elements_the_script_uses(db):
    owner = make_user()
    task = make_task(owner)

    response = client_for(owner).get(task_url(task.task_id))

    assert response.status_code == 200
    html = response.content.decode()
    for element_id in ("progress", "log", "state", "connection", "outcome", "cancel"):
        assert f'id="{element_id}"' in html
    assert 'aria-valuenow="0"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    config = json.loads(
        re.search(
            r'<script id="migration-config" type="application/json">(.*?)</script>',
            html,
        ).group(1)
    )
    assert config["task_id"] == task.task_id
    assert config["urls"]["cancel"] == task_url(task.task_id, "cancel/")


def test_page_escapes_stored_text(db):
    owner = make_user()
    task = make_task(
        owner,
        state="failed",
        target="<img src=x onerror=alert(1)>",
        error_type="ValueError",
        error_message="</script><script>alert(2)</script>",
    )

    html = client_for(owner).get(task_url(task.task_id)).content.decode()

    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script>alert(2)" not in html
    assert "\\u003C/script\\u003E\\u003Cscript\\u003Ealert(2)" in html


def test_page_hides_cancel_from_watcher(db):
    task = make_task(make_user())

    html = client_for(make_user(WATCH)).get(task_url(task.task_id)).content.decode()

    assert 'id="log"' in html
    assert 'id="cancel"' not in html


def test_page_errors(db):
    task = make_task(make_user())
    other = client_for(make_user())

    anonymous = Client().get(task_url(task.task_id))
    forbidden = other.get(task_url(task.task_id))
    missing = other.get(task_url("missing-task"))
    invalid = other.get(task_url("bad.id"))

    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/accounts/login/")
    assert forbidden.status_code == 403
    assert b"you may not watch migration task" in forbidden.content
    assert missing.status_code == 404
    assert invalid.status_code == 400
    assert b"invalid task id &#x27;bad.id&#x27;" in invalid.content


def test_list_shows_own_tasks(db):
    owner = make_user()
    own = make_task(owner, state="succeeded")
    other = make_task(make_user())

    html = client_for(owner).get("/migrations/").content.decode()

    assert f'data-task-id="{own.task_id}" data-state="succeeded"' in html
    assert other.task_id not in html


def test_list_shows_all_with_watch_permission(db):
    first = make_task(make_user())
    second = make_task(make_user())

    html = client_for(make_user(WATCH)).get("/migrations/").content.decode()

    assert first.task_id in html
    assert second.task_id in html


def test_list_redirects_anonymous(db):
    response = Client().get("/migrations/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
