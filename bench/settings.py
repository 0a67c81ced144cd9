"""Django settings of the benchmark project: PostgreSQL, channels-redis, Daphne.

``MIGRATION_BENCH_POSTGRES`` and ``MIGRATION_BENCH_REDIS`` name the services
(defaults: the local PostgreSQL database ``bench_migration`` and Redis database 0);
``MIGRATION_BENCH_REDIS_PREFIX`` keeps the channel layer's keys apart from other
users of the same Redis, and ``MIGRATION_BENCH_CHANNEL_LAYER`` picks the layer.
"""

import os
from urllib.parse import urlsplit

POSTGRES_URL = os.environ.get(
    "MIGRATION_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/bench_migration"
)
REDIS_URL = os.environ.get("MIGRATION_BENCH_REDIS", "redis://127.0.0.1:6379/0")
REDIS_PREFIX = os.environ.get("MIGRATION_BENCH_REDIS_PREFIX", "bench")
#: ``redis`` for channels-redis's RedisChannelLayer, the one the README shows, or
#: ``pubsub`` for its RedisPubSubChannelLayer.
CHANNEL_LAYER = os.environ.get("MIGRATION_BENCH_CHANNEL_LAYER", "redis")
_LAYER_BACKENDS = {
    "redis": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}
if CHANNEL_LAYER not in _LAYER_BACKENDS:
    raise ValueError(
        f"invalid MIGRATION_BENCH_CHANNEL_LAYER {CHANNEL_LAYER!r}: use 'redis' or "
        "'pubsub'"
    )

#: The user who owns every bench task and watches it over the WebSocket.
BENCH_USERNAME = "bench"

#: Jobs that may run at once; the scale figure runs 100 together.
MAX_WORKERS = 100

SECRET_KEY = "benchmark-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "bench.urls"
ASGI_APPLICATION = "bench.asgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "channels",
    "django_integration",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

_postgres = urlsplit(POSTGRES_URL)
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _postgres.path.lstrip("/") or "bench_migration",
        "USER": _postgres.username or "postgres",
        "PASSWORD": _postgres.password or "",
        "HOST": _postgres.hostname or "127.0.0.1",
        "PORT": _postgres.port or 5432,
        # Django's documentation recommends a connection pool for ASGI projects, in
        # place of persistent connections. Without one, every database call of a
        # consumer opens a new connection, and 100 browsers connecting at once
        # outlast Daphne's 5 s handshake timeout. Up to 20 baseline threads each
        # hold a connection, hence the size.
        "OPTIONS": {"pool": {"min_size": 4, "max_size": 40}},
    }
}

# redis-py 8 gives every connection a 5 s read timeout by default, as long as
# the blocking pop that channels-redis 4.3 waits in. A consumer that receives
# nothing for 5 s then fails with "Timeout reading from" and its socket closes
# with code 1011.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": _LAYER_BACKENDS[CHANNEL_LAYER],
        "CONFIG": {
            "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
            "prefix": REDIS_PREFIX,
        },
    }
}

MIGRATION_SUPERVISOR = {"MAX_WORKERS": MAX_WORKERS}
# The product's default bound of messages waiting at each sink applies unless
# MIGRATION_BENCH_MAX_PENDING sets another.
if os.environ.get("MIGRATION_BENCH_MAX_PENDING"):
    MIGRATION_SUPERVISOR["DB_MAX_PENDING"] = int(
        os.environ["MIGRATION_BENCH_MAX_PENDING"]
    )

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    # channels-redis reports at INFO each group send it dropped because a
    # channel was over capacity; the bench counts those lines.
    "loggers": {"channels_redis": {"level": "INFO"}},
}
