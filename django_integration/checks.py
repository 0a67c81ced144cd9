"""System checks of ``MIGRATION_SUPERVISOR`` and of the Channels set-up it needs.

======================  =======================================================
id                      condition
======================  =======================================================
django_integration.E001 ``MIGRATION_SUPERVISOR`` is not a dict
django_integration.E002 it has a key this app does not know
django_integration.E003 a value has the wrong type
django_integration.E004 a value is out of range or not one of the choices
django_integration.E005 ``LOST_AFTER`` is shorter than two heartbeat intervals
django_integration.E006 ``TARGET`` cannot be imported
django_integration.E007 ``"channels"`` is not in ``INSTALLED_APPS``
django_integration.E008 ``CHANNEL_LAYERS`` has no ``"default"`` layer
django_integration.W001 the in-memory channel layer is used with a database
                        other than SQLite
django_integration.W002 a channels-redis host keeps redis-py's read timeout,
                        which ends idle WebSocket consumers
======================  =======================================================
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from django_integration import conf

_PROBLEM_IDS = {
    "not_dict": "django_integration.E001",
    "unknown": "django_integration.E002",
    "type": "django_integration.E003",
    "value": "django_integration.E004",
    "relation": "django_integration.E005",
}
_SETTING_HINT = "See the table of keys in django_integration/conf.py."
_IN_MEMORY_LAYER = "channels.layers.InMemoryChannelLayer"


@checks.register()
def check_settings_valid(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    return [
        checks.Error(text, hint=_SETTING_HINT, id=_PROBLEM_IDS[kind])
        for kind, text in conf.find_problems(conf.configured_value())
    ]


@checks.register()
def check_target_importable(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    value = conf.configured_value()
    target = value.get("TARGET") if isinstance(value, dict) else None
    if not isinstance(target, str):
        return []

    from supervisor import InvalidTargetError
    from supervisor._validation import resolve_target

    try:
        resolve_target(target)
    except InvalidTargetError as exc:
        return [
            checks.Error(
                f"{conf.SETTING_NAME}['TARGET'] cannot be used: {exc}",
                hint="Name a module-level function as 'package.module:function'.",
                id="django_integration.E006",
            )
        ]
    return []


@checks.register()
def check_channels_installed(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    if "channels" in settings.INSTALLED_APPS:
        return []
    return [
        checks.Error(
            '"channels" is not in INSTALLED_APPS, so the live stream cannot reach '
            "browsers",
            hint='Add "channels" to INSTALLED_APPS.',
            id="django_integration.E007",
        )
    ]


@checks.register()
def check_channel_layer_configured(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    layers = getattr(settings, "CHANNEL_LAYERS", None)
    if isinstance(layers, dict) and "default" in layers:
        return []
    return [
        checks.Error(
            'CHANNEL_LAYERS has no "default" layer, so messages cannot be sent to '
            "browsers",
            hint="Configure channels_redis.core.RedisChannelLayer, or "
            f"{_IN_MEMORY_LAYER} for a single web process.",
            id="django_integration.E008",
        )
    ]


@checks.register()
def check_layer_matches_database(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    layers = getattr(settings, "CHANNEL_LAYERS", None)
    if not isinstance(layers, dict):
        return []
    layer = layers.get("default")
    backend = layer.get("BACKEND") if isinstance(layer, dict) else None
    engine = settings.DATABASES.get("default", {}).get("ENGINE", "")
    if backend != _IN_MEMORY_LAYER or engine.endswith("sqlite3"):
        return []
    return [
        checks.Warning(
            f"the in-memory channel layer is used with the database {engine!r}; "
            "with several web processes a browser sees only the tasks of the "
            "process it is connected to",
            hint="Use channels_redis.core.RedisChannelLayer when more than one "
            "web process serves the site.",
            id="django_integration.W001",
        )
    ]


@checks.register()
def check_redis_hosts_without_read_timeout(
    app_configs: Any = None, **kwargs: Any
) -> list[Any]:
    layers = getattr(settings, "CHANNEL_LAYERS", None)
    layer = layers.get("default") if isinstance(layers, dict) else None
    if not isinstance(layer, dict) or not str(layer.get("BACKEND", "")).startswith(
        "channels_redis."
    ):
        return []
    hosts = (layer.get("CONFIG") or {}).get("hosts") or []
    if all(isinstance(host, dict) and "socket_timeout" in host for host in hosts):
        return []
    return [
        checks.Warning(
            "a channels-redis host has no 'socket_timeout'; redis-py 8 then "
            "times out reads after 5 s, which closes every WebSocket consumer "
            "that waits longer for a message (close code 1011)",
            hint='Write each host as {"address": "redis://...", '
            '"socket_timeout": None}.',
            id="django_integration.W002",
        )
    ]
