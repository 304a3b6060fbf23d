"""The revision the watch loop holds in force: a commit, its inventory, its compile, and
what each target wants of it, by key.

Kept apart so that the loop and the rollout glue (``reconciler.watch.rollouts``)
share it: a revision is compiled with the node assignments its rollouts decide,
and compiled again, same commit, when a wave moves nodes.

A target brought to the previous revision is planned from the difference of the
two revisions (``changes_since``), and that difference is found without walking
every resource: the compile hands the very same objects on for what did not
change (``reconciler.compile_cache``), so the objects that are not in both
revisions are the only ones whose keys can differ. Each revision keeps its key
map (key -> resource) per target, made from the previous one's by those few
objects, for the next commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from reconciler.model.inventory import Inventory
from reconciler.resources import AnyResource, DesiredState
from reconciler.rollout.runner import RolloutPass
from reconciler.shared_runs import unshared
from reconciler.targets.base import ACTION_ORDER, Action, Change, Target

KeyMap = dict[str, AnyResource]


@dataclass(slots=True)
class GoodRevision:
    commit: str
    state: DesiredState
    inventory: Inventory | None = None
    rollouts: RolloutPass | None = None  # the node assignments ``state`` was compiled with
    _desired: dict[str, Sequence[AnyResource]] = field(default_factory=dict)
    _keys: dict[str, KeyMap] = field(default_factory=dict)

    def desired(self, target: Target) -> Sequence[AnyResource]:
        if target.name not in self._desired:
            self._desired[target.name] = target.desired(self.state)
        return self._desired[target.name]

    def keys(self, target: Target) -> KeyMap:
        """The target's desired resources by key (the last of a key wins)."""
        keys = self._keys.get(target.name)
        if keys is None:
            keys = self._keys[target.name] = {r.key: r for r in self.desired(target)}
        return keys

    def changes_since(self, previous: GoodRevision, target: Target) -> tuple[Change, ...]:
        """The changes that take the target from ``previous``'s resources to this
        revision's: ``plan.compute_changes(self.desired(target), LiveState(owned=
        previous.keys(target)))``, computed from the objects the two do not share."""
        old, old_keys = previous.desired(target), previous.keys(target)
        step = _key_step(old, old_keys, self.desired(target))
        if step is None:  # a key held twice: compared key by key
            keys, before = self.keys(target), old_keys
            touched = old_keys.keys() | keys.keys()
        else:
            removed, added = step
            touched = removed | added.keys()
            before = {key: old_keys[key] for key in touched if key in old_keys}
            made = self._keys.get(target.name)
            keys = made if made is not None else self._take_keys(previous, target, step)
        changes = []
        for key in touched:
            old_value, new_value = before.get(key), keys.get(key)
            if new_value is None:
                changes.append(Change(Action.DELETE, key, old_value, None))
            elif old_value is None:
                changes.append(Change(Action.CREATE, key, None, new_value))
            elif old_value is not new_value and old_value != new_value:
                changes.append(Change(Action.UPDATE, key, old_value, new_value))
        changes.sort(key=lambda c: (ACTION_ORDER[c.action], c.key))
        return tuple(changes)

    def _take_keys(
        self, previous: GoodRevision, target: Target, step: tuple[set[str], KeyMap]
    ) -> KeyMap:
        """The previous revision's key map, brought to this revision, becomes this one's:
        copying 200,000 keys costs more than the whole diff (the previous revision
        makes its map again, whole, if it is ever asked for it)."""
        keys = previous._keys.pop(target.name)
        removed, added = step
        for key in removed:
            del keys[key]
        keys.update(added)
        self._keys[target.name] = keys
        return keys


def _key_step(
    old: Sequence[AnyResource], old_keys: KeyMap, new: Sequence[AnyResource]
) -> tuple[set[str], KeyMap] | None:
    """(keys of the objects only ``old`` holds, the objects only ``new`` holds by key):
    what turns ``old_keys`` into ``{r.key: r for r in new}``, found from the objects the
    two do not share; None when a key is held twice in either (then which object a
    key names depends on order)."""
    if len(old_keys) != len(old):
        return None
    gone, fresh = unshared(old, new)  # exact: ``old`` holds no key twice
    removed = {resource.key for resource in gone}
    added = {resource.key: resource for resource in fresh}
    grown = sum(1 for key in added if key in removed or key not in old_keys)
    # A key (or an object) held twice in ``new`` leaves fewer keys than objects.
    return (removed, added) if len(old_keys) - len(removed) + grown == len(new) else None
