"""Importing this package registers every module in it (each file registers its classes).

New files need no edit here: a module is registered by its decorator alone.
"""
import importlib
import pkgutil

for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")

