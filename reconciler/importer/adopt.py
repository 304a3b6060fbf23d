"""``reconciler adopt``: take ownership of live objects that already are what the inventory says.

After an import, the site's dhcpd hosts, DNS records and boot files exist but
were not made by the reconciler, so every target reports them as unmanaged.
Adopting one that is *exactly* the desired object only records its key in the
target's ownership ledger (the same ledger applies widen): nothing is sent to
any service and nothing is rewritten. An object that differs in any field
stays unmanaged and is listed with the fields that differ; taking those over
is a decision for ``adopt = true`` in the runtime config and a reviewed
``apply``, which rewrites them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from reconciler.engine import Engine
from reconciler.resources import AnyResource
from reconciler.targets.base import OwnershipLedger, Target, TargetError


class _HasLedger(Protocol):
    ledger: OwnershipLedger


@dataclass(frozen=True, slots=True)
class Difference:
    key: str
    fields: tuple[tuple[str, object, object], ...]  # (field, live, wanted)

    def __str__(self) -> str:
        parts = [
            f"{name}: live {live!r}, inventory {wanted!r}" for name, live, wanted in self.fields
        ]
        return f"{self.key} ({'; '.join(parts)})"


@dataclass(slots=True)
class TargetAdoption:
    target: str
    adopted: list[str] = field(default_factory=list)
    differing: list[Difference] = field(default_factory=list)
    already_owned: int = 0
    missing: int = 0  # wanted but absent: the next apply creates them
    error: str | None = None


def _differences(live: AnyResource, wanted: AnyResource) -> tuple[tuple[str, object, object], ...]:
    old, new = live.to_dict(), wanted.to_dict()
    if type(live) is not type(wanted):
        return (("type", type(live).__name__, type(wanted).__name__),)
    keys = [*new, *(k for k in old if k not in new)]  # a field only one side sets differs too
    return tuple((k, old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k))


def adopt_target(
    target: Target, desired: Sequence[AnyResource], *, dry_run: bool
) -> TargetAdoption:
    """Record in ``target``'s ledger the unmanaged objects equal to what is desired."""
    outcome = TargetAdoption(target.name)
    try:
        live = target.read(desired)
    except TargetError as error:
        outcome.error = str(error)
        return outcome
    for resource in desired:
        if resource.key in live.owned:
            outcome.already_owned += 1
            continue
        found = live.unmanaged.get(resource.key)
        if found is None:
            outcome.missing += 1
        elif found == resource:
            outcome.adopted.append(resource.key)
        else:
            outcome.differing.append(Difference(resource.key, _differences(found, resource)))
    ledger = getattr(target, "ledger", None)
    if not isinstance(ledger, OwnershipLedger):
        if outcome.adopted:
            outcome.error = f"target kind {target.kind} keeps no ownership ledger; nothing adopted"
            outcome.adopted = []
        return outcome
    if outcome.adopted and not dry_run:
        ledger.widen(outcome.adopted)
    return outcome


def adopt_site(engine: Engine, *, dry_run: bool = False) -> list[TargetAdoption]:
    """Adopt, target by target, every live object that equals the compiled inventory's."""
    state = engine.compile(engine.load())
    return [adopt_target(t, t.desired(state), dry_run=dry_run) for t in engine.targets]


def render_adoption(outcomes: list[TargetAdoption], *, dry_run: bool, limit: int = 20) -> str:
    verb = "would adopt" if dry_run else "adopted"
    lines = []
    for outcome in outcomes:
        if outcome.error is not None and not outcome.adopted:
            lines.append(f"{outcome.target}: error: {outcome.error}")
            continue
        lines.append(
            f"{outcome.target}: {verb} {len(outcome.adopted)}, already owned "
            f"{outcome.already_owned}, differing (left unmanaged) {len(outcome.differing)}, "
            f"missing (apply creates) {outcome.missing}"
        )
        for difference in outcome.differing[:limit]:
            lines.append(f"  differs: {difference}")
        if len(outcome.differing) > limit:
            lines.append(f"  ... and {len(outcome.differing) - limit} more")
    return "\n".join(lines)
