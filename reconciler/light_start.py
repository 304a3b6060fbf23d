"""What ``reconciler validate`` skips at start-up: pydantic's search for plugins.

When pydantic builds its first model it looks for plugins (entry point group
``pydantic``): it imports ``importlib.metadata`` (which pulls in ``email``,
``zipfile``, ``csv``...) and reads the metadata of every installed distribution.
That is about a tenth of validating a small inventory (~20 ms), the one command
whose start-up is a goal (issue 17: 0.25 s). ``validate`` therefore runs with
``PYDANTIC_DISABLE_PLUGINS=__all__`` unless the user set that variable: their value
wins, and an empty one loads every plugin as pydantic does by default. The other
commands run for seconds and leave pydantic's default alone.

pydantic imports ``importlib.metadata`` even when plugins are disabled, so until
one of its attributes is read, ``sys.modules`` holds a stand-in for it: code that
uses the module gets the real one, imported then, and ``validate`` never imports
it. (``importlib.util.LazyLoader`` would not do: the import statement itself reads
the module's ``__spec__``, which makes it load.) ``tests/unit/test_cli_imports.py``
checks both.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
from typing import Any

PLUGINS_ENV = "PYDANTIC_DISABLE_PLUGINS"


def skip_pydantic_plugins() -> None:
    """Disable pydantic's plugins unless the environment says otherwise (see above)."""
    if PLUGINS_ENV in os.environ:
        return
    os.environ[PLUGINS_ENV] = "__all__"
    import_on_first_use("importlib.metadata")


def import_on_first_use(name: str) -> None:
    """Put a stand-in for module ``name`` in ``sys.modules``, if not imported yet."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None:
        return
    stand_in = _OnFirstUse(name)
    stand_in.__spec__ = spec  # what the import statement reads of a module already there
    sys.modules[name] = stand_in
    _bind_in_parent(name, stand_in)


class _OnFirstUse(types.ModuleType):
    """Imports the real module when an attribute it does not have itself is read."""

    def __getattr__(self, attribute: str) -> Any:
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        module = importlib.import_module(name)
        _bind_in_parent(name, module)
        return getattr(module, attribute)


def _bind_in_parent(name: str, module: types.ModuleType) -> None:
    """``package.module`` as the import system sets it once a submodule is imported."""
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
