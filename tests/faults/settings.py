"""Django settings of the web processes that the fault tests start and break.

They are the demo project's settings pointed at the Redis and PostgreSQL servers
that the fault tests run on loopback ports of their own, read from the
environment:

``FAULTS_DATABASE_URL``
    ``postgresql://user@host:port/name`` of the database.
``FAULTS_REDIS_URL``
    URL of the Redis server behind the channel layer.
``FAULTS_SUPERVISOR``
    JSON object merged over ``MIGRATION_SUPERVISOR`` (``LOST_AFTER``,
    ``DB_MAX_PENDING`` and the other keys a test tunes).

``MIGRATION_DEMO_VAR`` and ``DJANGO_SECRET_KEY`` must be set too, so that the
demo keeps its uploads in the test's folder and every process of a test signs
sessions with one key.
"""

import json
import os
from urllib.parse import urlsplit

from demo.settings import *  # noqa: F403
from demo.settings import MIGRATION_SUPERVISOR

_database = urlsplit(os.environ["FAULTS_DATABASE_URL"])

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _database.path.lstrip("/"),
        "USER": _database.username or "postgres",
        "PASSWORD": _database.password or "",
        "HOST": _database.hostname,
        "PORT": _database.port,
        # Requests made during an outage fail after 3 s instead of piling up.
        "OPTIONS": {"connect_timeout": 3},
    }
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [
                {"address": os.environ["FAULTS_REDIS_URL"], "socket_timeout": None}
            ]
        },
    }
}

ROOT_URLCONF = "tests.faults.urls"

MIGRATION_SUPERVISOR = {
    **MIGRATION_SUPERVISOR,
    **json.loads(os.environ.get("FAULTS_SUPERVISOR", "{}")),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "format": "%(asctime)s %(process)d %(levelname)s %(name)s %(message)s"
        }
    },
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["stderr"], "level": "INFO"},
}
