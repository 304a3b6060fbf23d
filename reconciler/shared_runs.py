"""Two long sequences that hold mostly the same objects: where they differ, found in C.

A long-running process compiles revision after revision into sequences of up to
200,000 resources that are, object for object, the same ones except around what
a commit changed: the compile hands the output of unchanged groups and hosts on
(``reconciler.compile_cache``), in the same order. Comparing the two from the
start and from the end by identity runs in C (``map`` over ``operator.is_not``),
so only the stretch between, around the change, is looked at object by object.
Users: the DNS targets' normalised records (``targets.dns_records``) and the
watch loop's plan between two revisions (``watch.revision``).
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")


def _same_for(first: Iterable[object], second: Iterable[object], limit: int) -> int:
    """How many leading positions hold the very same object in both (at most ``limit``)."""
    differs = itertools.compress(itertools.count(), map(operator.is_not, first, second))
    return next(differs, limit)


def shared_ends(old: Sequence[T], new: Sequence[T]) -> tuple[int, int]:
    """(head, tail): ``old[:head]`` and ``new[:head]`` are the same objects, as are the
    last ``tail`` of each; the two stretches never overlap in either sequence."""
    shorter = min(len(old), len(new))
    head = _same_for(old, new, shorter)
    if head == shorter:
        return head, 0
    tail = _same_for(reversed(old), reversed(new), shorter - head)
    return head, min(tail, shorter - head)


def middles(old: Sequence[T], new: Sequence[T]) -> tuple[Sequence[T], Sequence[T], int, int]:
    """The stretches of ``old`` and ``new`` between their shared head and tail, with the
    head's and the tail's length."""
    head, tail = shared_ends(old, new)
    return old[head : len(old) - tail], new[head : len(new) - tail], head, tail


def unshared(old: Sequence[T], new: Sequence[T]) -> tuple[list[T], list[T]]:
    """(objects of ``old`` not in ``new``, objects of ``new`` not in ``old``), by identity,
    each once. Exact when neither sequence holds an object twice; otherwise an object
    held twice may be listed although the other sequence has it (callers that care
    check for duplicates)."""
    old_middle, new_middle, _, _ = middles(old, new)
    old_ids = {id(item): item for item in old_middle}
    new_ids = {id(item): item for item in new_middle}
    return (
        [old_ids[i] for i in old_ids.keys() - new_ids.keys()],
        [new_ids[i] for i in new_ids.keys() - old_ids.keys()],
    )
