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
        after_diff = _key_map_after(old, old_keys, self.desired(target))
        if after_diff is None:  # a key held twice: compared key by key
            keys = self.keys(target)
            touched = old_keys.keys() | keys.keys()
        else:
            keys, touched = after_diff
            self._keys.setdefault(target.name, keys)
        changes = []
        for key in touched:
            before, after = old_keys.get(key), keys.get(key)
            if after is None:
                changes.append(Change(Action.DELETE, key, before, None))
            elif before is None:
                changes.append(Change(Action.CREATE, key, None, after))
            elif before is not after and before != after:
                changes.append(Change(Action.UPDATE, key, before, after))
        changes.sort(key=lambda c: (ACTION_ORDER[c.action], c.key))
        return tuple(changes)


def _key_map_after(
    old: Sequence[AnyResource], old_keys: KeyMap, new: Sequence[AnyResource]
) -> tuple[KeyMap, set[str]] | None:
    """``{r.key: r for r in new}`` made from ``old_keys`` and the objects ``old`` and
    ``new`` do not share, with the keys of those objects; None when a key is held
    twice in either (then which object a key names depends on order)."""
    if len(old_keys) != len(old):
        return None
    gone, fresh = unshared(old, new)  # exact: ``old`` holds no object twice
    keys = dict(old_keys)
    touched = set()
    for resource in gone:
        del keys[resource.key]
        touched.add(resource.key)
    for resource in fresh:
        keys[resource.key] = resource
        touched.add(resource.key)
    # A key (or an object) held twice in ``new`` leaves fewer keys than objects.
    return (keys, touched) if len(keys) == len(new) else None
