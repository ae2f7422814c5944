#!/usr/bin/env python
"""Django's command-line utility. `platform/` is a source root (not a package): it goes on sys.path."""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def main() -> None:
    # Appended after the stdlib so that `import platform` keeps giving the standard library module.
    for path in (ROOT / "platform", ROOT):
        if str(path) not in sys.path:
            sys.path.append(str(path))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dataengine.settings.base")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
