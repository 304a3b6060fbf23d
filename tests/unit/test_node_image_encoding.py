"""A node's image file keeps its exact bytes: files written before the shared
encoder (``json.dumps`` per file) must still read as unchanged, or every node
file would be rewritten once after an upgrade."""

from __future__ import annotations

import json
import random
from pathlib import Path

from reconciler.resources import NodeImage
from reconciler.targets.node_images import NodeImagesTarget, encode_node_image, encode_node_images


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


class _Text(str):
    """A string of another type: the encoder still quotes it as a string."""


def test_encoding_many_at_once_matches_json_dumps_whatever_the_field_types() -> None:
    """Images of a group share the text around host and MAC; values that are equal but
    of other types (1, 1.0, True), unhashable or nested ones, None and non-ASCII text
    each still come out as the encoder writes them, in any order."""
    chooser = random.Random(1717)
    odd: list[object] = [None, 1, 1.0, True, 0, False, [1, "x"], {"b": [None], "a": 2}, _Text("t")]
    plain = ["", "live", "reboot", 'é"\\', "\u2028😀", "http://b/x?y=1"]

    def value() -> object:
        return chooser.choice(odd if chooser.random() < 0.2 else plain)

    def host() -> object:
        return chooser.choice([*odd, f"n{chooser.randint(0, 9)}é"])

    # A few groups; some images differ from their group in one field only.
    groups = [[chooser.choice(plain) for _ in range(10)] for _ in range(5)]
    images = []
    for _ in range(4000):
        shared: list[object] = list(chooser.choice(groups))
        if chooser.random() < 0.5:
            shared[chooser.randrange(10)] = value()
        images.append(NodeImage(host(), host(), *shared))  # type: ignore[arg-type]
    images += [NodeImage("h", "m", *[shared] * 10) for shared in (1, 1.0, True, "1")]  # type: ignore[arg-type]
    expected = [
        json.dumps(image.to_dict(), sort_keys=True, separators=(",", ":")) + "\n"
        for image in images
    ]
    assert encode_node_images(images) == expected
    assert [encode_node_image(image) for image in images] == expected
