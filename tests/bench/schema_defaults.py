"""Print, as JSON, the value Django writes for each column of the platform's tables when a model is created bare.

Run in a subprocess with the Django environment (`python -m tests.bench.schema_defaults`): the database has no
column defaults (Django fills them in Python), so SQL seeding asks the models instead of guessing. Output:
``{db_table: {column: {"null": bool, "default": <JSON value> | "__now__" | "__missing__"}}}``.
"""
from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOW, MISSING = "__now__", "__missing__"


def _jsonable(value):
    if isinstance(value, (dt.datetime, dt.date)):
        return NOW
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    json.dumps(value)
    return value


def column_defaults() -> dict:
    from django.apps import apps
    from django.db.models import NOT_PROVIDED

    tables: dict[str, dict] = {}
    for model in apps.get_models():
        columns = {}
        for field in model._meta.concrete_fields:
            if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
                default = NOW
            elif field.default is not NOT_PROVIDED:
                try:
                    default = _jsonable(field.default() if callable(field.default) else field.default)
                except (TypeError, ValueError):
                    default = MISSING
            elif field.null:
                default = None
            elif field.blank and field.get_internal_type() in ("CharField", "TextField", "SlugField", "EmailField"):
                default = ""  # what a form or serializer leaves in a blank text field
            else:
                default = MISSING
            columns[field.column] = {"null": field.null, "default": default}
        tables[model._meta.db_table] = columns
    return tables


def main() -> None:
    for path in (ROOT / "platform", ROOT):  # appended: the stdlib `platform` module must win
        if str(path) not in sys.path:
            sys.path.append(str(path))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dataengine.settings.base")
    import django

    django.setup()
    json.dump(column_defaults(), sys.stdout)


if __name__ == "__main__":
    main()
