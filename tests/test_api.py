"""The public API is written down: every module file is imported by its package, and each
package's ``__all__`` lists names it defines (the registered classes and a few helpers)."""

import importlib
import subprocess
import sys

import pytest

PACKAGES = [
    'mmattn.models.attentions',
    'mmattn.models.backbones',
    'mmattn.models.layers',
    'mmattn.models.plugins',
]

_PROBE = r"""
import pkgutil, sys, importlib
pkg = importlib.import_module({package!r})
files = {{f'{package}.' + info.name for info in pkgutil.iter_modules(pkg.__path__)}}
missing = sorted(name for name in files if name not in sys.modules)
assert files and not missing, f'{package}/__init__.py does not import ' + str(missing)
print('ok')
"""


@pytest.mark.parametrize('package', PACKAGES)
def test_every_file_is_imported_by_its_package(package):
    # a fresh interpreter: a module another test imported must not hide a forgotten file
    proc = subprocess.run(
        [sys.executable, '-c', _PROBE.format(package=package)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0 and 'ok' in proc.stdout, proc.stderr[-2000:]


@pytest.mark.parametrize('package', PACKAGES)
def test_all_is_a_list_of_defined_names(package):
    pkg = importlib.import_module(package)
    assert isinstance(pkg.__all__, list) and len(set(pkg.__all__)) == len(pkg.__all__)
    for name in pkg.__all__:
        assert hasattr(pkg, name), f'{package}.__all__ names {name}, which it does not define'


def test_every_registered_model_is_exported():
    """A class registered from the models package is reachable under its package's API."""
    from mmattn.registry import MODELS

    exported = set()
    for package in PACKAGES:
        exported |= set(importlib.import_module(package).__all__)
    ours = {
        name
        for name, cls in MODELS.module_dict.items()
        if cls.__module__.startswith('mmattn.models.')
    }
    assert ours and ours <= exported, sorted(ours - exported)
