"""What ``reconciler validate`` skips at start-up: work done for features it does not use.

``validate`` of a small inventory is the one command whose start-up is a goal
(issue 17: 0.25 s); a fifth of it went to two things it never uses:

- **pydantic's plugins.** When pydantic builds its first model it looks for
  plugins (entry point group ``pydantic``): it imports ``importlib.metadata``
  (which pulls in ``email``, ``zipfile``, ``csv``...) and reads the metadata of
  every installed distribution (~20 ms). ``validate`` runs with
  ``PYDANTIC_DISABLE_PLUGINS=__all__`` unless the user set that variable: their
  value wins, and an empty one loads every plugin as pydantic does by default.
  pydantic imports ``importlib.metadata`` even then, so until one of its
  attributes is read, ``sys.modules`` holds a stand-in for it: code that uses it
  gets the real module, imported then. (``importlib.util.LazyLoader`` would not
  do: the import statement itself reads the module's ``__spec__``, which makes
  it load.)
- **PyYAML's regular expressions.** Importing ``yaml`` compiles nine patterns for
  its pure-Python reader and YAML 1.1 resolver (~18 ms; the reader's check for
  non-printable characters, with ranges up to U+10FFFF, is most of it). The
  inventory reads YAML with the C parser and resolvers of its own
  (``reconciler/inventory/yamlfile.py``), so ``yaml`` is imported with each of
  those patterns compiled when first used instead: still compiled, and the same,
  for any code that does use them.

The other commands run for seconds and keep the defaults.
``tests/unit/test_cli_imports.py`` checks all of this.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

PLUGINS_ENV = "PYDANTIC_DISABLE_PLUGINS"


def light_start() -> None:
    """Everything above, before ``validate`` imports pydantic or PyYAML."""
    skip_pydantic_plugins()
    if "yaml" not in sys.modules:
        with patterns_compiled_on_first_use(of_package="yaml"):
            import yaml  # noqa: F401 - imported here, with the stand-ins


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


@contextmanager
def patterns_compiled_on_first_use(*, of_package: str) -> Iterator[None]:
    """While active, ``re.compile`` called by the package's own modules returns a
    stand-in that compiles the pattern when it is first used; others' calls compile."""
    compile_now = re.compile

    def compile_later(pattern: Any, flags: int | re.RegexFlag = 0) -> Any:
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if caller == of_package or caller.startswith(of_package + "."):
            return _PatternOnFirstUse(compile_now, pattern, flags)
        return compile_now(pattern, flags)

    re.compile = compile_later
    try:
        yield
    finally:
        re.compile = compile_now


class _PatternOnFirstUse:
    """A compiled pattern's stand-in (``match``, ``search``, ``pattern``...)."""

    __slots__ = ("_compile", "_compiled", "_source")

    def __init__(self, compile_now: Any, pattern: Any, flags: int | re.RegexFlag) -> None:
        self._compile = compile_now
        self._source = (pattern, flags)
        self._compiled: re.Pattern[Any] | None = None

    def __getattr__(self, attribute: str) -> Any:
        if self._compiled is None:
            self._compiled = self._compile(*self._source)
        return getattr(self._compiled, attribute)
