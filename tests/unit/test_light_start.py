"""What ``validate`` skips at start-up (``reconciler/light_start.py``) changes nothing
for code that does use it: ``importlib.metadata`` and PyYAML's patterns are the real
ones once used. Each check runs in a fresh interpreter, as the console script does."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib.metadata import version

from reconciler.light_start import _PatternOnFirstUse, patterns_compiled_on_first_use

_ENV = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=_ENV,
    )
    return done.stdout


METADATA = """
import importlib, sys
from reconciler.light_start import light_start
light_start()
import importlib.metadata as stand_in
from pydantic import BaseModel

class Model(BaseModel):  # pydantic imports importlib.metadata here, without reading it
    a: int

loaded_by_pydantic = "importlib.metadata._meta" in sys.modules
from importlib.metadata import version
print(loaded_by_pydantic, version("pydantic"), stand_in.version("typer"),
      type(sys.modules["importlib.metadata"]).__name__, importlib.metadata.version("pyyaml"))
"""


def test_the_stand_in_for_importlib_metadata_gives_the_real_module_on_first_use() -> None:
    expected = f"False {version('pydantic')} {version('typer')} module {version('pyyaml')}"
    assert _run(METADATA).split() == expected.split()


YAML = """
import datetime, json, sys
from reconciler.light_start import light_start
light_start()
import yaml
reader = yaml.reader.Reader
before = type(reader.NON_PRINTABLE).__name__
text = "a: yes\\nb: 2001-12-14\\nc: 0b101\\nd: ~\\ne: 1:20\\n<<: {f: 1}\\n"
pure = yaml.load(text, Loader=yaml.SafeLoader)  # the pure-Python loader: reader, resolver
try:
    yaml.load("a: \\x07", Loader=yaml.SafeLoader)
    refused = None
except yaml.reader.ReaderError as error:
    refused = str(error).splitlines()[0]
print(json.dumps({"before": before, "loaded": pure, "refused": refused,
                  "pattern": reader.NON_PRINTABLE.pattern}, default=str))
"""


def test_pyyaml_compiles_its_patterns_when_first_used_and_loads_as_before() -> None:
    report = json.loads(_run(YAML))
    assert report["before"] == "_PatternOnFirstUse"
    assert report["loaded"] == {"a": True, "b": "2001-12-14", "c": 5, "d": None, "e": 80, "f": 1}
    assert report["refused"] == "unacceptable character #x0007: special characters are not allowed"
    import yaml.reader

    assert report["pattern"] == yaml.reader.Reader.NON_PRINTABLE.pattern


def test_only_the_named_package_gets_stand_ins_and_only_while_active() -> None:
    compile_now = re.compile
    with patterns_compiled_on_first_use(of_package="yaml"):
        ours = re.compile(r"a+")  # this module is not yaml's
    assert isinstance(ours, re.Pattern)
    assert re.compile is compile_now
    later = _PatternOnFirstUse(re.compile, r"(x)(y)?", re.IGNORECASE)
    assert later.fullmatch("X").group(1) == "X"
    assert (later.pattern, later.flags & re.IGNORECASE, later.groups) == ("(x)(y)?", 2, 2)
