"""Settings: the only place (with workers/config.py) that reads the environment.

With no environment at all the engine runs embedded: SQLite, media under DATA_DIR, eager tasks.
DATABASE_URL, CELERY_BROKER_URL / REDIS_URL and S3_* switch to the real services; nothing else changes.
"""
from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

ROOT_DIR = Path(__file__).resolve().parents[3]


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def env_bool(name: str, default: bool) -> bool:
    return env(name, "1" if default else "0").lower() in ("1", "true", "yes", "on")


DEBUG = env_bool("DEBUG", True)
SECRET_KEY = env("SECRET_KEY") or ("dev-insecure-key-for-local-use-only" if DEBUG else None)
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
ALLOWED_HOSTS = (env("ALLOWED_HOSTS") or "127.0.0.1,localhost,testserver").split(",")

DATA_DIR = Path(env("DATA_DIR", str(ROOT_DIR / "data"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)  # the embedded SQLite database and local storage live here

LOCAL_APPS = ["accounts", "media", "concepts", "annotation", "engine", "taxonomy"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    *[f"dataengine.{label}" for label in LOCAL_APPS],
]
MIGRATION_MODULES = {label: f"migrations.{label}" for label in LOCAL_APPS}

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "dataengine.urls"
WSGI_APPLICATION = "dataengine.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [ROOT_DIR / "platform" / "dataengine" / "templates"],
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

_sqlite_url = f"sqlite:///{DATA_DIR / 'dataengine.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(env("DATABASE_URL", _sqlite_url), conn_max_age=60)}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Writers take the lock at BEGIN, so concurrent annotators queue instead of failing on lock upgrades.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
elif DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # psycopg prepares a statement server-side after it ran this many times on a connection, so hot queries
    # (the lease, token auth) are planned once. Set DATABASE_PREPARE_THRESHOLD=off behind PgBouncer < 1.21.
    _prepare = env("DATABASE_PREPARE_THRESHOLD", "5")
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = None if _prepare == "off" else int(_prepare)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Object storage: a local folder by default, S3 (any S3-compatible server) when S3_BUCKET is set.
S3_BUCKET = env("S3_BUCKET")
S3_ENDPOINT_URL = env("S3_ENDPOINT_URL")
S3_ACCESS_KEY_ID = env("S3_ACCESS_KEY_ID")
S3_SECRET_ACCESS_KEY = env("S3_SECRET_ACCESS_KEY")
S3_REGION = env("S3_REGION", "us-east-1")
if S3_BUCKET:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": S3_ENDPOINT_URL,
            "access_key": S3_ACCESS_KEY_ID,
            "secret_key": S3_SECRET_ACCESS_KEY,
            "region_name": S3_REGION,
            "signature_version": "s3v4",
            "addressing_style": "path",
            "file_overwrite": False,
            "querystring_auth": True,
        },
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(DATA_DIR / "storage")},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"

# Uploads: anything larger is refused with 413 before it is stored.
MEDIA_MAX_UPLOAD_BYTES = int(env("MEDIA_MAX_UPLOAD_BYTES", str(50 * 1024 * 1024)))
MEDIA_MAX_PIXELS = int(env("MEDIA_MAX_PIXELS", str(40_000_000)))
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# Human task leases.
TASK_LEASE_SECONDS = int(env("TASK_LEASE_SECONDS", "600"))

# Celery: the app itself lives in workers/app.py and reads its own env; these are the Django side's view.
CELERY_EAGER = env("CELERY_BROKER_URL") is None and env("REDIS_URL") is None

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "dataengine.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Data engine API",
    "DESCRIPTION": "Human + AI data engine for promptable concept segmentation.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "MediaSourceEnum": "dataengine.media.models.MediaSource",
        "MediaKindEnum": "dataengine.media.models.MediaKind",
        "DatapointSourceEnum": "dataengine.concepts.models.DatapointSource",
        "DatapointStateEnum": "dataengine.concepts.models.DatapointState",
        "MaskSourceEnum": "dataengine.annotation.models.MaskSource",
        "MaskStateEnum": "dataengine.annotation.models.MaskState",
        "TaskKindEnum": "dataengine.annotation.models.TaskKind",
        "TaskStateEnum": "dataengine.annotation.models.TaskState",
        "ModelKindEnum": "dataengine.engine.models.ModelKind",
    },
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "WARNING")},
}
