"""platform/ is a source root, never a package: the standard library's `platform` must win."""
import importlib
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_stdlib_platform_is_not_shadowed_by_the_source_root():
    import platform

    assert Path(platform.__file__).parent == Path(sysconfig.get_paths()["stdlib"])
    assert platform.system() == "Linux"
    assert not (ROOT / "platform" / "__init__.py").exists()


def test_stdlib_platform_wins_when_run_from_the_repository_root():
    # The repository root comes first on sys.path for `python -c` run there, as for manage.py.
    out = subprocess.run([sys.executable, "-c", "import platform; print(platform.system())"], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "Linux"


def test_the_django_project_and_libraries_import():
    for name in ("dataengine.settings.base", "workers.app", "model.rle"):
        importlib.import_module(name)


def test_migrations_live_in_the_top_level_folder():
    from django.conf import settings

    for label, module in settings.MIGRATION_MODULES.items():
        assert (ROOT / module.replace(".", "/") / "0001_initial.py").exists(), label


def test_workers_never_import_django():
    # kombu imports django.utils.functional when Django is installed; what must never load is Django's
    # settings, ORM or app registry, or the platform.
    code = ("import sys, workers.app, workers.config; "
            "print(any(m.startswith(('django.conf', 'django.db', 'django.apps', 'dataengine')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "False"
