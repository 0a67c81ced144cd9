"""Django settings for the test suite.

``MIGRATION_TEST_BACKEND=services`` runs the Django tests on PostgreSQL and
channels-redis; the default is SQLite and the in-memory channel layer, the set-up
a new user has without either service.
"""

import contextlib
import os
import tempfile
from urllib.parse import urlsplit

from tests.services import POSTGRES_URL, REDIS_URL

BACKEND = os.environ.get("MIGRATION_TEST_BACKEND", "default")
if BACKEND not in {"default", "services"}:
    raise ValueError(
        f"invalid MIGRATION_TEST_BACKEND {BACKEND!r}: use 'default' or 'services'"
    )

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_integration",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

STATIC_URL = "/static/"
ASGI_APPLICATION = "tests.asgi.application"

if BACKEND == "services":
    _pg = urlsplit(POSTGRES_URL)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            # A helper process started by a test is pointed at that test's
            # database through MIGRATION_TEST_DATABASE_NAME.
            "NAME": os.environ.get("MIGRATION_TEST_DATABASE_NAME")
            or _pg.path.lstrip("/")
            or "test",
            "USER": _pg.username or "postgres",
            "PASSWORD": _pg.password or "",
            "HOST": _pg.hostname or "127.0.0.1",
            "PORT": _pg.port or 5432,
            # Parallel runs of the suite each get their own test database.
            "TEST": {"NAME": f"test_migration_{os.getpid()}"},
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8 times out reads after 5 s, which ends every idle
                # consumer; channels-redis needs no socket timeout.
                "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
                "prefix": f"test{os.getpid()}",
            },
        }
    }
else:
    # The test database is a file, not an in-memory database, because the sink
    # and heartbeat threads open connections of their own and must see the same
    # data. One file per pytest process keeps parallel runs apart.
    _sqlite_dir = os.path.join(tempfile.gettempdir(), "migration-supervisor-tests")
    os.makedirs(_sqlite_dir, exist_ok=True)
    _sqlite_test_name = os.path.join(_sqlite_dir, f"test_{os.getpid()}.sqlite3")
    # A killed run can leave WAL files behind, and SQLite would replay them into
    # a new database of the same name once the pid is reused.
    for _suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(_sqlite_test_name + _suffix)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.path.join(_sqlite_dir, f"db_{os.getpid()}.sqlite3"),
            "TEST": {"NAME": _sqlite_test_name},
            "OPTIONS": {
                # Several threads write: wait for the lock instead of failing at
                # once, take it at BEGIN so two writers never deadlock on an
                # upgrade, and let readers run beside a writer (WAL).
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL;",
            },
        }
    }
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

MIGRATION_SUPERVISOR = {
    "MAX_WORKERS": 4,
    "GRACE_PERIOD": 2.0,
}
