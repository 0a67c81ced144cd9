"""Settings of the demo project: upload a Tableau workbook, watch it convert.

With no environment variables set, the demo keeps its SQLite database, uploads
and outputs in ``var/`` at the repository root and uses the in-memory channel
layer, so it runs in one Daphne process with nothing else installed.

Environment variables:

``MIGRATION_DEMO_POSTGRES`` (or ``DATABASE_URL``)
    A ``postgresql://user:password@host:port/name`` URL: use PostgreSQL.
``MIGRATION_DEMO_REDIS``
    A ``redis://host:port/db`` URL: use channels-redis, so several Daphne
    processes share every task's stream.
``MIGRATION_DEMO_VAR``
    Folder for the SQLite file, the secret key, uploads and outputs
    (default ``<repository>/var``).
``MIGRATION_DEMO_DEBUG``
    ``1`` turns on Django's debug mode. Off by default.
``MIGRATION_DEMO_ALLOWED_HOSTS``
    Comma-separated host names served besides localhost.
``MIGRATION_DEMO_MAX_UPLOAD_MB``
    Largest workbook upload in MiB (default 20).
``DEMO_AUTO_LOGIN``
    ``1`` logs every visitor of the demo page in as the ``demo`` user, creating
    it if needed. Off by default: then sign in at ``/accounts/login/`` as the
    user ``run.py demo`` creates, with the password it prints (or run
    ``.venv/bin/python manage.py create_demo_user``, which does the same).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("MIGRATION_DEMO_VAR", BASE_DIR / "var"))
DEMO_UPLOAD_ROOT = VAR_DIR / "uploads"
DEMO_OUTPUT_ROOT = VAR_DIR / "output"
DEMO_SAMPLE_WORKBOOK = BASE_DIR / "demo" / "samples" / "small-sales.twb"
DEMO_AUTO_LOGIN = os.environ.get("DEMO_AUTO_LOGIN") == "1"
#: JSON file of the demo users' passwords, which ``create_demo_user`` prints
#: again on each run.
DEMO_PASSWORD_FILE = VAR_DIR / "demo_password.json"


def _secret_key() -> str:
    """Return a key kept in ``var/secret_key``, created on first use."""
    configured = os.environ.get("DJANGO_SECRET_KEY")
    if configured:
        return configured
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(50), encoding="ascii")
        key_file.chmod(0o600)
    return key_file.read_text(encoding="ascii").strip()


SECRET_KEY = _secret_key()
DEBUG = os.environ.get("MIGRATION_DEMO_DEBUG") == "1"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"] + [
    host.strip()
    for host in os.environ.get("MIGRATION_DEMO_ALLOWED_HOSTS", "").split(",")
    if host.strip()
]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    # Before django_integration, so the demo's versions of that app's templates
    # win and add the demo's navigation and download link to its pages.
    "demo",
    "django_integration",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo.urls"
ASGI_APPLICATION = "demo.asgi.application"

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


def _postgres(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(
            f"invalid PostgreSQL URL {url!r}: expected postgresql://user@host/name"
        )
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/") or "postgres",
        "USER": unquote(parts.username or "postgres"),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "127.0.0.1",
        "PORT": parts.port or 5432,
    }


_POSTGRES_URL = os.environ.get("MIGRATION_DEMO_POSTGRES") or os.environ.get(
    "DATABASE_URL"
)
if _POSTGRES_URL:
    DATABASES = {"default": _postgres(_POSTGRES_URL)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "demo.sqlite3",
            "OPTIONS": {
                # The supervisor's sinks write from their own threads while
                # requests read: WAL lets readers and one writer overlap, and
                # IMMEDIATE transactions wait for the lock instead of failing.
                "init_command": "PRAGMA journal_mode=WAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }

_REDIS_URL = os.environ.get("MIGRATION_DEMO_REDIS")
if _REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8 times out reads after 5 s, which ends every idle
                # consumer; channels-redis needs no socket timeout.
                "hosts": [{"address": _REDIS_URL, "socket_timeout": None}],
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

MIGRATION_SUPERVISOR = {
    "TARGET": "demo.tableau.job:convert_workbook",
    "MAX_UPLOAD_BYTES": int(os.environ.get("MIGRATION_DEMO_MAX_UPLOAD_MB", "20"))
    * 1024
    * 1024,
    "TIMEOUT": 600.0,
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "demo:index"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "INFO"},
}
