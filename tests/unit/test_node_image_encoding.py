"""A node's image file keeps its exact bytes: files written before the shared
encoder (``json.dumps`` per file) must still read as unchanged, or every node
file would be rewritten once after an upgrade."""

from __future__ import annotations

import json
import random
from pathlib import Path

from reconciler.resources import NodeImage
from reconciler.targets.node_images import NodeImagesTarget


def test_encoding_is_byte_for_byte_the_json_dumps_one(tmp_path: Path) -> None:
    target = NodeImagesTarget(name="images", root=tmp_path / "http", state_dir=tmp_path)
    for image in (
        NodeImage("n1", "52:54:00:00:00:01", "compute", "1.0", "http://b/k", "a" * 64,
                  "http://b/i", "b" * 64, "http://b/r", "c" * 64, "console=ttyS0 quiet"),
        NodeImage("nœud-2", "52:54:00:00:00:02", "gpu", "2.0", "http://b/k?x=\"y\"", "",
                  "", "", "", "", "a\\b\tc", swap="reboot"),
    ):  # fmt: skip
        expected = json.dumps(image.to_dict(), sort_keys=True, separators=(",", ":")) + "\n"
        assert target.encode(image) == expected
        assert target.decode("nodes/n.json", expected) == image


def test_written_out_encoding_matches_json_dumps_on_awkward_strings(tmp_path: Path) -> None:
    """Quotes, backslashes, control characters, non-ASCII, lone surrogates, braces: the
    hand-written encoding escapes each string exactly as json.dumps does."""
    target = NodeImagesTarget(name="images", root=tmp_path / "http", state_dir=tmp_path)
    alphabet = ["a", '"', "\\", "\t", "\n", "\x00", "\x7f", "é", "\u2028", "\ud800", "😀", "{", "}"]
    chooser = random.Random(17)

    def text() -> str:
        return "".join(chooser.choice(alphabet) for _ in range(chooser.randint(0, 6)))

    for _ in range(3000):
        swap = chooser.choice(["live", "reboot", text()])
        fields = [text() for _ in range(11)]
        image = NodeImage(*fields[:11], swap=swap)  # type: ignore[misc]
        expected = json.dumps(image.to_dict(), sort_keys=True, separators=(",", ":")) + "\n"
        assert target.encode(image) == expected
