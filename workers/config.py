"""The workers' own configuration: the only module under workers/ that reads the environment.

GPU and LLM workers start without Django, so they cannot use the platform's settings.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


@dataclass(frozen=True)
class S3Config:
    endpoint_url: str | None
    access_key_id: str | None
    secret_access_key: str | None
    region: str


@dataclass(frozen=True)
class WorkerConfig:
    broker_url: str
    result_backend: str | None
    always_eager: bool
    data_dir: Path
    model_cache_dir: Path
    s3: S3Config


def load() -> WorkerConfig:
    data_dir = Path(_env("DATA_DIR", str(Path(__file__).resolve().parent.parent / "data")))
    broker = _env("CELERY_BROKER_URL") or _env("REDIS_URL")
    return WorkerConfig(
        # Embedded default: no broker configured means tasks run eagerly in-process (demo only).
        broker_url=broker or "memory://",
        result_backend=_env("CELERY_RESULT_BACKEND"),
        always_eager=broker is None or _env("CELERY_ALWAYS_EAGER", "0") == "1",
        data_dir=data_dir,
        model_cache_dir=Path(_env("MODEL_CACHE_DIR", str(data_dir / "model-cache"))),
        s3=S3Config(
            endpoint_url=_env("S3_ENDPOINT_URL"),
            access_key_id=_env("S3_ACCESS_KEY_ID"),
            secret_access_key=_env("S3_SECRET_ACCESS_KEY"),
            region=_env("S3_REGION", "us-east-1"),
        ),
    )


CONFIG = load()
