"""Build ``agent.pyz``: the agent as a zipapp, byte for byte the same from the same sources.

The archive holds this package and an empty ``reconciler/__init__.py`` (so
nothing else of the reconciler, and none of its dependencies, comes along) and
a ``__main__.py`` that runs the agent. It is what ``python -m zipapp`` makes,
written with ``zipfile`` directly so that entry order, timestamps and
permissions are fixed: the same sources always give the same sha256, which
keeps image builds reproducible.
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

INTERPRETER = "/usr/bin/env python3"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
MAIN = "from reconciler.agent.main import main\nimport sys\nsys.exit(main())\n"


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    info.create_system = 3  # Unix, whatever system builds it
    return info


def agent_sources() -> dict[str, bytes]:
    """Archive name -> content of every file the zipapp carries."""
    package = Path(__file__).parent
    files = {"reconciler/__init__.py": b"", "__main__.py": MAIN.encode()}
    for path in sorted(package.glob("*.py")):
        files[f"reconciler/agent/{path.name}"] = path.read_bytes()
    return files


def build_zipapp() -> bytes:
    """The zipapp's bytes: shebang line, then the zip archive."""
    buffer = io.BytesIO()
    buffer.write(f"#!{INTERPRETER}\n".encode())
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in sorted(agent_sources().items()):
            archive.writestr(_entry(name), content, compresslevel=9)
    return buffer.getvalue()


def write_zipapp(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(build_zipapp())
    target.chmod(0o755)
    return target


if __name__ == "__main__":  # python -m reconciler.agent.build OUT
    print(write_zipapp(Path(sys.argv[1] if len(sys.argv) > 1 else "agent.pyz")))
