"""Test settings: the real services (PostgreSQL, Redis, SeaweedFS) on 127.0.0.1, started by tests/services.py."""
import os
import tempfile

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dataengine")
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="dataengine-test-"))

from dataengine.settings.base import *  # noqa: E402,F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast user fixtures
