"""Two long sequences that hold mostly the same objects: where they differ, found in C.

A long-running process compiles revision after revision into sequences of up to
200,000 resources that are, object for object, the same ones except around what
a commit changed: the compile hands the output of unchanged groups and hosts on
(``reconciler.compile_cache``), in the same order. Comparing the two from the
start and from the end, a stretch at a time, runs in C (slice comparison, which
takes the same object as equal without asking it), so only the stretch between,
around the change, is looked at object by object. Items at the two ends are
equal, not always the same objects: users treat them as unchanged, which is
what equal values are.
Users: the DNS targets' normalised records (``targets.dns_records``) and the
watch loop's plan between two revisions (``watch.revision``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def _equal(first: Sequence[T], second: Sequence[T], start: int, stop: int, *, end: bool) -> bool:
    """Whether positions ``start``-``stop`` (counted from the end when ``end``) hold equal
    items: a slice comparison, which runs in C and takes the same object as equal
    without calling its ``__eq__``."""
    if end:
        return (
            first[len(first) - stop : len(first) - start]
            == second[len(second) - stop : len(second) - start]
        )
    return first[start:stop] == second[start:stop]


def _same_for(first: Sequence[T], second: Sequence[T], limit: int, *, end: bool) -> int:
    """How many leading (``end``: trailing) positions hold equal items in both, at most
    ``limit``: stretches that double while they match, then halving inside the first
    stretch that does not (about two comparisons per position)."""
    done, step = 0, 64
    while done < limit:
        size = min(step, limit - done)
        if _equal(first, second, done, done + size, end=end):
            done, step = done + size, step * 2
            continue
        matched, failed = 0, size  # positions done..done+matched are equal
        while failed - matched > 1:
            middle = (matched + failed) // 2
            if _equal(first, second, done + matched, done + middle, end=end):
                matched = middle
            else:
                failed = middle
        return done + matched
    return limit


def shared_ends(old: Sequence[T], new: Sequence[T]) -> tuple[int, int]:
    """(head, tail): the first ``head`` items of ``old`` and ``new`` are equal, and so are
    the last ``tail``; the two stretches never overlap in either sequence."""
    if type(old) is not type(new):  # a list never equals a tuple
        old, new = list(old), list(new)
    shorter = min(len(old), len(new))
    head = _same_for(old, new, shorter, end=False)
    if head == shorter:
        return head, 0
    tail = _same_for(old, new, shorter - head, end=True)
    return head, tail


def middles(old: Sequence[T], new: Sequence[T]) -> tuple[Sequence[T], Sequence[T], int, int]:
    """The stretches of ``old`` and ``new`` between their shared head and tail, with the
    head's and the tail's length."""
    head, tail = shared_ends(old, new)
    return old[head : len(old) - tail], new[head : len(new) - tail], head, tail


def unshared(old: Sequence[T], new: Sequence[T]) -> tuple[list[T], list[T]]:
    """(objects of ``old`` not in ``new``, objects of ``new`` not in ``old``), by identity
    between the two ends and by value at them, each once. Exact when neither sequence
    holds an item twice (by value); otherwise an item held twice may be listed although
    the other sequence has it, or an equal one (callers that care check for duplicates)."""
    old_middle, new_middle, _, _ = middles(old, new)
    old_ids = {id(item): item for item in old_middle}
    new_ids = {id(item): item for item in new_middle}
    return (
        [old_ids[i] for i in old_ids.keys() - new_ids.keys()],
        [new_ids[i] for i in new_ids.keys() - old_ids.keys()],
    )
