"""The revision the watch loop holds in force: a commit, its inventory and its compile.

Kept apart so that the loop and the rollout glue (``reconciler.watch.rollouts``)
share it: a revision is compiled with the node assignments its rollouts decide,
and compiled again, same commit, when a wave moves nodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from reconciler.model.inventory import Inventory
from reconciler.resources import AnyResource, DesiredState
from reconciler.rollout.runner import RolloutPass
from reconciler.targets.base import Target


@dataclass(slots=True)
class GoodRevision:
    commit: str
    state: DesiredState
    inventory: Inventory | None = None
    rollouts: RolloutPass | None = None  # the node assignments ``state`` was compiled with
    _desired: dict[str, Sequence[AnyResource]] = field(default_factory=dict)

    def desired(self, target: Target) -> Sequence[AnyResource]:
        if target.name not in self._desired:
            self._desired[target.name] = target.desired(self.state)
        return self._desired[target.name]
