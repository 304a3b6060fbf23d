"""One reconcile pass of one target, run inside the namespace where its server listens.

The sandbox starts dhcpd or Kea by a first pass of their config target, and
the integration tests drive single targets against real servers the same
way: read what is live from inside the server namespace (OMAPI, the Kea
control agent and PostgreSQL listen on its loopback), plan, apply. The watch
loop and ``reconciler apply`` go through the engine instead.
"""

from __future__ import annotations

from reconciler.plan import TargetPlan, build_target_plan
from reconciler.resources import DesiredState
from reconciler.sandbox.netns import entered
from reconciler.targets.base import ApplyResult, Target


def sync_target(
    target: Target, state: DesiredState, *, namespace: str, adopt: bool = True
) -> tuple[TargetPlan, ApplyResult]:
    """Plan ``target`` against ``state`` and apply it, inside ``namespace``.

    ``adopt``: take over same-named live objects the ledger does not know (the plan's default).
    """
    with entered(namespace):
        desired = target.desired(state)
        plan = build_target_plan(
            target=target.name,
            kind=target.kind,
            desired=desired,
            live=target.read(desired),
            adopt=adopt,
        )
        result = target.apply(plan.changes)
    return plan, result
