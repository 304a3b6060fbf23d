"""``deletionPolicy: prune``: remove every object a Site's targets own, nothing else.

The same engine as a pass, with an empty desired state: each target plans the
deletion of what its ledger says it created, hand-made objects stay (they were
never owned), and the plan is applied without the change threshold, since
removing everything is exactly what was asked.
"""

from __future__ import annotations

import logging

from reconciler.config import RuntimeConfig
from reconciler.engine import Engine
from reconciler.resources import DesiredState

log = logging.getLogger(__name__)


def prune_site(config: RuntimeConfig) -> list[str]:
    """Delete what the Site owns; the errors of targets that could not (empty: all done)."""
    engine = Engine(config)
    plan = engine.plan(DesiredState(), revision="prune")
    report = engine.apply(plan, force=True)
    for outcome in report.outcomes:
        log.info("pruned", extra={"target": outcome.target, "ok": outcome.ok})
    return [f"{o.target}: {o.error}" for o in report.outcomes if not o.ok]
