"""Importing this package registers every module in it and exports their public names.

Each file registers its classes with a decorator and lists its public names in ``__all__``;
a new file needs no edit here: it is imported, registered and exported by :func:`_import_all`.
"""
import importlib
import pkgutil


def _import_all() -> list:
    names = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f'{__name__}.{info.name}')
        for name in getattr(module, '__all__', ()):
            globals()[name] = getattr(module, name)
            names.append(name)
    return names


__all__ = _import_all()
