"""Lazy attribute loading for the package's namespaces (PEP 562).

Keeps ``import zipline_factorarb`` and its sub-packages cheap and free of
side effects: the module that defines a name (and whatever it imports:
zipline, JAX, cvxpy, Dask) is imported the first time the name is used.
"""

import sys
from importlib import import_module


def lazy_namespace(package, names, extra=()):
    """``(__getattr__, __dir__, __all__)`` for a package.

    ``names`` maps each public name to the module defining it (absolute, or
    relative to ``package`` when it starts with a dot); ``extra`` lists
    names the package defines itself.
    """
    public = sorted(names) + list(extra)

    def __getattr__(name):
        try:
            module = names[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__():
        return public

    return __getattr__, __dir__, public
