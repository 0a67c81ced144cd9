"""System checks of MIGRATION_SUPERVISOR and the Channels set-up."""

from __future__ import annotations

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_integration import conf
from django_integration.checks import (
    check_channel_layer_configured,
    check_channels_installed,
    check_layer_matches_database,
    check_redis_hosts_without_read_timeout,
    check_settings_valid,
    check_target_importable,
)

IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
POSTGRES = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "unused"}}


def ids(messages):
    return [message.id for message in messages]


def test_default_settings_pass():
    with override_settings(MIGRATION_SUPERVISOR={}):
        assert check_settings_valid() == []
        assert check_target_importable() == []


def test_checks_registered():
    registered = checks.registry.registry.get_checks()
    assert check_settings_valid in registered
    assert check_layer_matches_database in registered


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([("TIMEOUT", 1)], "django_integration.E001"),
        ({"MAX_WORKER": 2}, "django_integration.E002"),
        ({"MAX_WORKERS": "2"}, "django_integration.E003"),
        ({"BATCH_SEND": 1}, "django_integration.E003"),
        ({"GRACE_PERIOD": True}, "django_integration.E003"),
        ({"MAX_WORKERS": 0}, "django_integration.E004"),
        ({"TIMEOUT": 0}, "django_integration.E004"),
        ({"HEARTBEAT_INTERVAL": -1}, "django_integration.E004"),
        ({"START_METHOD": "thread"}, "django_integration.E004"),
        ({"START_METHOD": "fork"}, "django_integration.E004"),
        ({"WATCH_PERMISSION": None}, "django_integration.E004"),
        (
            {"HEARTBEAT_INTERVAL": 5, "LOST_AFTER": 6},
            "django_integration.E005",
        ),
    ],
)
def test_invalid_setting_reported(value, expected):
    with override_settings(MIGRATION_SUPERVISOR=value):
        assert ids(check_settings_valid()) == [expected]
        with pytest.raises(ImproperlyConfigured):
            conf.get_settings()


def test_error_names_key_and_value():
    with override_settings(MIGRATION_SUPERVISOR={"MAX_WORKERS": "2"}):
        (error,) = check_settings_valid()
    assert "'MAX_WORKERS'" in error.msg
    assert "'2'" in error.msg


@pytest.mark.parametrize(
    "target",
    [
        "tests.django_integration.missing_module:run",
        "tests.django_integration.jobs:missing_function",
        "tests.django_integration.jobs.count_to",
    ],
)
def test_target_not_importable(target):
    with override_settings(MIGRATION_SUPERVISOR={"TARGET": target}):
        assert ids(check_target_importable()) == ["django_integration.E006"]


def test_target_importable():
    target = "tests.django_integration.jobs:count_to"
    with override_settings(MIGRATION_SUPERVISOR={"TARGET": target}):
        assert check_target_importable() == []
        assert conf.get_settings().target == target


def test_channels_not_installed(settings):
    settings.INSTALLED_APPS = [
        app for app in settings.INSTALLED_APPS if app != "channels"
    ]
    assert ids(check_channels_installed()) == ["django_integration.E007"]


@pytest.mark.parametrize("layers", [None, {}, {"other": IN_MEMORY["default"]}])
def test_channel_layer_missing(settings, layers):
    if layers is None:
        del settings.CHANNEL_LAYERS
    else:
        settings.CHANNEL_LAYERS = layers
    assert ids(check_channel_layer_configured()) == ["django_integration.E008"]


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_in_memory_layer_with_postgres_warns():
    with override_settings(CHANNEL_LAYERS=IN_MEMORY, DATABASES=POSTGRES):
        assert ids(check_layer_matches_database()) == ["django_integration.W001"]


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_in_memory_layer_with_sqlite_passes():
    sqlite = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "x"}}
    with override_settings(CHANNEL_LAYERS=IN_MEMORY, DATABASES=sqlite):
        assert check_layer_matches_database() == []


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_redis_layer_with_postgres_passes():
    redis = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer"}}
    with override_settings(CHANNEL_LAYERS=redis, DATABASES=POSTGRES):
        assert check_layer_matches_database() == []


def test_settings_merged_over_defaults():
    with override_settings(MIGRATION_SUPERVISOR={"MAX_WORKERS": 3}):
        merged = conf.get_settings()
    assert merged.max_workers == 3
    assert merged.heartbeat_interval == 2.0
    assert merged.watch_permission == "django_integration.watch_any_migration"


REDIS_LAYER = "channels_redis.core.RedisChannelLayer"


@pytest.mark.parametrize(
    "hosts",
    [
        ["redis://127.0.0.1:6379/0"],
        [{"address": "redis://127.0.0.1:6379/0"}],
        [{"address": "redis://a", "socket_timeout": None}, "redis://b"],
    ],
)
def test_redis_host_without_timeout_warns(settings, hosts):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": REDIS_LAYER, "CONFIG": {"hosts": hosts}}
    }
    assert ids(check_redis_hosts_without_read_timeout()) == ["django_integration.W002"]


def test_redis_host_with_timeout_passes(settings):
    host = {"address": "redis://127.0.0.1:6379/0", "socket_timeout": None}
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": REDIS_LAYER, "CONFIG": {"hosts": [host]}}
    }
    assert check_redis_hosts_without_read_timeout() == []


def test_in_memory_layer_needs_no_timeout(settings):
    settings.CHANNEL_LAYERS = IN_MEMORY
    assert check_redis_hosts_without_read_timeout() == []
