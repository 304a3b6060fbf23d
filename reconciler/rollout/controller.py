"""Which nodes of a group get the new image now: waves, max_unavailable, health, pause, rollback.

Pure decision logic, no I/O: given a group's policy, the version it should
move to, the version each node is assigned now, the agents' reports, the
rollout so far and the clock, it returns every node's assignment and the new
rollout state. The watch loop (and the operator) persist the state, write the
assignments into ``nodes/<host>.json`` and the boot files, and call it again
on the next pass. Because it is pure, every rule here has a unit test.

Rules, in the words of ``docs/INVENTORY.md``:

- Waves are cumulative: ``[1, 10%, 100%]`` means one node, then 10% of the
  group, then all. A wave opens when every node of the waves before it is
  healthy on the new version (or offline, see below).
- Inside a wave, at most ``max_unavailable`` nodes are updating or offline at
  once. Offline nodes (silent for ``SILENT_AFTER``, three missed heartbeats of
  the agent, or ``timeout`` if longer) count against it, but get
  the new version at once (they boot it when they come back) and never hold a
  wave; when they use up the whole budget, online nodes still go one at a time.
- A node failed when it reports a failed health check on the new version, came
  back on the old one after a swap to the new one, or is not healthy within
  ``timeout`` of its wave opening. Then ``pause`` opens no more waves
  (Degraded) and ``rollback`` also returns every updated node to the version it
  had (RolledBack).
- A new target version supersedes a rollout in progress: nodes start again
  from the version they are assigned now.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from reconciler.model.rollout import RolloutPolicy, resolve_amount
from reconciler.rollout.state import (
    Brake,
    Decision,
    Failure,
    GroupRollout,
    NodeReport,
    NodeState,
)
from reconciler.server.nodereports import SILENT_AFTER

_SWAP_FAILED = ("failed", "rolled-back")
_SETTLED = ("healthy", "offline", "failed")


def decide(
    *,
    group: str,
    hosts: Iterable[str],
    target: str,
    revision: str,
    policy: RolloutPolicy,
    current: Mapping[str, str],
    reports: Mapping[str, NodeReport],
    rollout: GroupRollout | None,
    brake: Brake,
    now: float,
    timeout_from: float = 0.0,
) -> Decision:
    """One pass for one group; ``hosts`` are its nodes that follow the group image (no canaries).

    No node fails for its wave timeout before ``timeout_from`` plus the timeout: the
    reports were unavailable until then (serve away), so silence proves nothing.
    """
    ordered = sorted(hosts)
    events: list[str] = []
    if rollout is None or rollout.target != target:
        rollout = _start(group, ordered, target, revision, current, rollout, events)
    movers = [host for host in ordered if host in rollout.previous]
    was_complete = rollout.phase == "Complete"
    if not movers:
        return _finish(ordered, target, rollout, {}, events, policy)
    if brake.aborted and rollout.phase != "Aborted":
        rollout.phase = "Aborted"
        rollout.rolled_back = sorted(rollout.assigned)
        events.append(f"{group}: rollout to {target} aborted; updated nodes return")
    if rollout.phase in ("Aborted", "RolledBack"):
        states = _states(rollout, movers, reports, policy, now)
        return _finish(ordered, target, rollout, states, events, policy)

    states = _states(rollout, movers, reports, policy, now)
    _note_failures(rollout, states, reports, policy, max(now - timeout_from, 0.0), now, events)
    blocking = {h: f for h, f in rollout.failed.items() if f.at > brake.resumed_at}
    if blocking:
        _fail(rollout, policy, events)
        states = _states(rollout, movers, reports, policy, now)
        return _finish(ordered, target, rollout, states, events, policy)

    if policy.paused or brake.paused:
        if rollout.phase != "Paused":
            events.append(f"{group}: rollout to {target} paused")
        rollout.phase = "Paused"
    else:
        rollout.phase = "Progressing"
        _advance(rollout, movers, states, policy, now, events)
        states = _states(rollout, movers, reports, policy, now)
    if all(states[host] in _SETTLED and host in rollout.assigned for host in movers):
        if not was_complete:
            events.append(f"{group}: rollout to {target} complete")
        rollout.phase = "Complete"
    return _finish(ordered, target, rollout, states, events, policy)


def decide_settled(
    *, hosts: Iterable[str], target: str, rollout: GroupRollout | None, policy: RolloutPolicy
) -> Decision | None:
    """What ``decide`` returns when no node moves (a rollout to ``target`` with no node
    left on another version), without the reports, assignments and clock it would
    otherwise need; None when nodes may move (then call ``decide``)."""
    if rollout is None or rollout.target != target or rollout.previous:
        return None
    return _finish(sorted(hosts), target, rollout, {}, [], policy)


def _start(
    group: str,
    hosts: list[str],
    target: str,
    revision: str,
    current: Mapping[str, str],
    superseded: GroupRollout | None,
    events: list[str],
) -> GroupRollout:
    """A new rollout: nodes with another version move; new nodes and those on target do not."""
    previous = {host: current[host] for host in hosts if current.get(host) not in (None, target)}
    if superseded is not None and superseded.phase not in ("Complete",):
        events.append(f"{group}: rollout to {superseded.target} superseded by {target}")
    if previous:
        events.append(f"{group}: rollout to {target} starts for {len(previous)} node(s)")
    return GroupRollout(group=group, target=target, revision=revision, previous=previous)


def _states(
    rollout: GroupRollout,
    movers: list[str],
    reports: Mapping[str, NodeReport],
    policy: RolloutPolicy,
    now: float,
) -> dict[str, NodeState]:
    states: dict[str, NodeState] = {}
    # An idle agent reports every 5 minutes: a shorter timeout must not make it look offline
    # (offline nodes get the new version without being waited for).
    silent_after = max(policy.timeout, SILENT_AFTER)
    for host in movers:
        report = reports.get(host)
        offline = report is None or now - report.reported_at > silent_after
        if host in rollout.rolled_back:
            states[host] = "rolled-back"
        elif host in rollout.failed:
            states[host] = "failed"
        elif host not in rollout.assigned:
            states[host] = "offline" if offline else "waiting"
        elif _healthy(report, rollout.target, policy):
            states[host] = "healthy"
        elif offline and host in rollout.assigned_offline:
            states[host] = "offline"
        else:
            states[host] = "updating"
    return states


def _healthy(report: NodeReport | None, target: str, policy: RolloutPolicy) -> bool:
    if report is None or report.running != target:
        return False
    # A node already on the target before it was assigned (it booted it) is fine too.
    return not policy.health.agent or report.healthy is True


def _note_failures(
    rollout: GroupRollout,
    states: dict[str, NodeState],
    reports: Mapping[str, NodeReport],
    policy: RolloutPolicy,
    waited_at_most: float,
    now: float,
    events: list[str],
) -> None:
    for host, state in states.items():
        if state != "updating":
            continue
        report = reports.get(host)
        since = rollout.assigned[host]
        reason = None
        if report is not None and report.reported_at >= since:
            if report.running == rollout.target and report.healthy is False:
                reason = f"health check failed on {rollout.target}: {report.reason or 'no detail'}"
            elif report.swap_to == rollout.target and report.swap_result in (
                "failed",
                "rolled-back",
            ):
                reason = f"came back on {report.running}: {report.reason or report.swap_result}"
        waited = min(now - max(since, rollout.wave_started), waited_at_most)
        if reason is None and waited > policy.timeout:
            reason = f"not healthy on {rollout.target} within {policy.timeout} s"
        if reason is not None:
            rollout.failed[host] = Failure(reason=reason, at=now)
            states[host] = "failed"
            events.append(f"{rollout.group}: {host} failed: {reason}")


def _fail(rollout: GroupRollout, policy: RolloutPolicy, events: list[str]) -> None:
    if policy.on_failure == "rollback":
        rollout.phase = "RolledBack"
        rollout.rolled_back = sorted(rollout.assigned)
        events.append(
            f"{rollout.group}: rollout to {rollout.target} rolled back "
            f"({len(rollout.rolled_back)} node(s) return)"
        )
    elif rollout.phase != "Degraded":
        rollout.phase = "Degraded"
        events.append(f"{rollout.group}: rollout to {rollout.target} paused after failures")


def _advance(
    rollout: GroupRollout,
    movers: list[str],
    states: dict[str, NodeState],
    policy: RolloutPolicy,
    now: float,
    events: list[str],
) -> None:
    """Open the next wave when the last one is done, then assign within max_unavailable."""
    total = len(movers)
    wave_sizes = cumulative_waves(policy.waves, total)
    # Failures still here were acknowledged by a resume: they no longer hold the rollout.
    settled = all(states[h] in _SETTLED for h in rollout.assigned if h in states)
    wave_full = rollout.wave >= 0 and len(rollout.assigned) >= wave_sizes[rollout.wave]
    if rollout.wave < 0 or (settled and wave_full and rollout.wave + 1 < len(wave_sizes)):
        rollout.wave += 1
        rollout.wave_started = now
        events.append(
            f"{rollout.group}: wave {rollout.wave + 1}/{len(wave_sizes)} opens "
            f"({wave_sizes[rollout.wave]} of {total} node(s))"
        )
    wanted = wave_sizes[rollout.wave] - len(rollout.assigned)
    if wanted <= 0:
        return
    waiting = [h for h in movers if h not in rollout.assigned]
    offline = [h for h in waiting if states[h] == "offline"]
    online = [h for h in waiting if states[h] != "offline"]
    budget = resolve_amount(policy.max_unavailable, total)
    busy = sum(1 for h in rollout.assigned if states.get(h) == "updating")
    unavailable = busy + len(offline)
    free = budget - unavailable
    if free <= 0 and busy == 0:
        free = 1  # offline nodes alone never block a rollout for ever
    chosen = offline[:wanted]
    chosen += online[: max(0, min(wanted - len(chosen), free))]
    for host in chosen:
        rollout.assigned[host] = now
    rollout.assigned_offline.extend(offline[:wanted])
    if chosen:
        events.append(f"{rollout.group}: {', '.join(chosen)} get {rollout.target}")


def cumulative_waves(waves: list[str], total: int) -> list[int]:
    """Nodes in each wave, cumulative, for a group of ``total``: at least one, never fewer."""
    sizes: list[int] = []
    for amount in waves:
        size = max(1, resolve_amount(amount, total))
        sizes.append(max(size, sizes[-1]) if sizes else size)
    return sizes


def _finish(
    hosts: list[str],
    target: str,
    rollout: GroupRollout,
    states: dict[str, NodeState],
    events: list[str],
    policy: RolloutPolicy,
) -> Decision:
    assignments = dict.fromkeys(hosts, target)
    back = set(rollout.rolled_back)
    for host in rollout.previous.keys() & assignments.keys():
        if host not in rollout.assigned or host in back:
            assignments[host] = rollout.previous[host]
    if not rollout.previous:
        rollout.phase = "Complete"
    return Decision(
        assignments=assignments,
        rollout=rollout,
        node_states=states,
        events=tuple(events),
        waves_total=len(policy.waves),
    )
