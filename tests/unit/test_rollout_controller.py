"""The rollout decision: waves, percentages, max_unavailable, offline nodes, failures, restarts."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest
from pydantic import ValidationError

from reconciler.model.rollout import RolloutPolicy, parse_duration, resolve_amount
from reconciler.rollout.controller import decide, decide_settled
from reconciler.rollout.state import Brake, Decision, GroupRollout, NodeReport

OLD, NEW, NEWER = "compute@1", "compute@2", "compute@3"


def hosts(count: int) -> list[str]:
    return [f"node{i:03d}" for i in range(1, count + 1)]


class Site:
    """A group of nodes whose agents report what they run: the controller's whole world."""

    def __init__(self, count: int, **policy: object) -> None:
        self.hosts = hosts(count)
        self.policy = RolloutPolicy.model_validate(policy)
        self.assigned = dict.fromkeys(self.hosts, OLD)
        self.reports = {h: NodeReport(h, OLD, True, 0.0) for h in self.hosts}
        self.rollout: GroupRollout | None = None
        self.brake = Brake()
        self.now = 100.0
        self.silent: set[str] = set()  # nodes whose agent stopped reporting

    def step(self, target: str = NEW, *, advance: float = 1.0) -> Decision:
        self.now += advance
        for host, report in self.reports.items():  # agents report every few seconds
            if host not in self.silent:
                self.reports[host] = replace(report, reported_at=self.now - 0.5)
        settled = decide_settled(
            hosts=self.hosts, target=target, rollout=copy.deepcopy(self.rollout), policy=self.policy
        )
        decision = decide(
            group="compute",
            hosts=self.hosts,
            target=target,
            revision="abc",
            policy=self.policy,
            current=self.assigned,
            reports=self.reports,
            rollout=self.rollout,
            brake=self.brake,
            now=self.now,
        )
        # The state goes through JSON, as it does in the state dir between passes.
        assert decision.rollout is not None
        if settled is not None:  # the shortcut says what the whole decision says
            assert settled.rollout is not None and settled.events == decision.events
            assert settled.assignments == decision.assignments
            assert settled.rollout.to_dict() == decision.rollout.to_dict()
        self.rollout = GroupRollout.from_dict(json.loads(json.dumps(decision.rollout.to_dict())))
        self.assigned = dict(decision.assignments)
        return decision

    def agents_follow(self, *, healthy: bool = True, only: set[str] | None = None) -> None:
        """Every online node assigned another version swaps to it and reports."""
        for host, version in self.assigned.items():
            if only is not None and host not in only:
                continue
            if self.reports[host].running != version:
                self.reports[host] = NodeReport(
                    host, version, healthy, self.now + 0.5, swap_to=version, swap_result="ok"
                )

    def on(self, version: str) -> list[str]:
        return [h for h, v in self.assigned.items() if v == version]


def test_waves_open_one_after_another_as_nodes_come_back_healthy() -> None:
    site = Site(20, waves=[1, "25%", "100%"], max_unavailable="100%")
    assert site.step().assignments["node001"] == NEW
    assert site.on(NEW) == ["node001"]
    site.step()  # the canary node has not reported yet: nothing more
    assert site.on(NEW) == ["node001"]
    site.agents_follow()
    site.step()
    assert len(site.on(NEW)) == 5  # 25% of 20
    site.agents_follow()
    site.step()
    assert len(site.on(NEW)) == 20
    site.agents_follow()
    decision = site.step()
    assert decision.rollout is not None and decision.rollout.phase == "Complete"
    assert set(decision.node_states.values()) == {"healthy"}


def test_percentages_round_up_on_small_groups_and_every_wave_has_a_node() -> None:
    assert resolve_amount("10%", 3) == 1
    assert resolve_amount("50%", 3) == 2
    assert resolve_amount("5", 3) == 3
    site = Site(3, waves=["10%", "50%", "100%"], max_unavailable="100%")
    site.step()
    assert site.on(NEW) == ["node001"]
    site.agents_follow()
    site.step()
    assert site.on(NEW) == ["node001", "node002"]


def test_max_unavailable_limits_nodes_swapping_at_once() -> None:
    site = Site(10, waves=["100%"], max_unavailable=2)
    site.step()
    assert len(site.on(NEW)) == 2
    site.step()
    assert len(site.on(NEW)) == 2  # both still updating
    site.agents_follow()
    site.step()
    assert len(site.on(NEW)) == 4


def test_offline_nodes_count_against_max_unavailable_and_get_the_new_version_at_once() -> None:
    site = Site(10, waves=["100%"], max_unavailable=3)
    for host in ("node009", "node010"):
        site.reports.pop(host)  # never reported: offline
    site.step()
    # Both offline nodes take the new version (they boot it); one online node may go.
    assert site.on(NEW) == ["node001", "node009", "node010"]


def test_offline_nodes_never_block_a_rollout_for_ever() -> None:
    site = Site(6, waves=["100%"], max_unavailable=2)
    for host in ("node004", "node005", "node006"):
        site.reports.pop(host)
    for _ in range(10):
        site.step()
        site.agents_follow(only={"node001", "node002", "node003"})
    decision = site.step()
    assert site.on(NEW) == site.hosts
    assert decision.rollout is not None and decision.rollout.phase == "Complete"
    assert decision.node_states["node005"] == "offline"


def test_a_failed_health_check_pauses_the_rollout_and_says_why() -> None:
    site = Site(10, waves=[1, "100%"], max_unavailable="100%", on_failure="pause")
    site.step()
    site.agents_follow(healthy=False)
    decision = site.step()
    assert decision.rollout is not None and decision.rollout.phase == "Degraded"
    assert "health check failed" in decision.rollout.failed["node001"].reason
    assert site.on(NEW) == ["node001"]  # pause keeps it where it is, opens nothing
    for _ in range(3):
        site.step()
    assert site.on(NEW) == ["node001"]


def test_rollback_returns_updated_nodes_to_the_old_version() -> None:
    site = Site(10, waves=[2, "100%"], max_unavailable="100%", on_failure="rollback")
    site.step()
    site.agents_follow(only={"node001"})
    site.reports["node002"] = NodeReport(
        "node002",
        OLD,
        True,
        site.now + 0.5,
        swap_to=NEW,
        swap_result="rolled-back",
        reason="/sbin/init missing",
    )
    decision = site.step()
    assert decision.rollout is not None and decision.rollout.phase == "RolledBack"
    assert "came back on compute@1" in decision.rollout.failed["node002"].reason
    assert site.on(NEW) == []


def test_a_node_that_stays_silent_after_its_assignment_fails_after_the_timeout() -> None:
    site = Site(4, waves=[1, "100%"], max_unavailable="100%", timeout="1m")
    site.step()
    site.silent.add("node001")  # swapping, and never heard of again
    site.step(advance=30)
    assert site.rollout is not None and not site.rollout.failed
    decision = site.step(advance=40)
    assert decision.rollout is not None and decision.rollout.phase == "Degraded"
    assert "within 60 s" in decision.rollout.failed["node001"].reason


def test_canaries_are_not_moved_by_waves() -> None:
    site = Site(4, waves=["100%"], max_unavailable="100%")
    site.hosts.remove("node004")  # a per-host image: the caller leaves it out
    site.step()
    assert "node004" not in site.assigned


def test_paused_from_git_or_by_the_brake_opens_no_wave_and_resume_goes_on() -> None:
    site = Site(4, waves=[1, "100%"], max_unavailable="100%", paused=True)
    decision = site.step()
    assert site.on(NEW) == [] and decision.rollout is not None
    assert decision.rollout.phase == "Paused"
    site.policy = RolloutPolicy(waves=["1", "100%"], max_unavailable="100%")
    site.brake = Brake(paused=True)
    site.step()
    assert site.on(NEW) == []
    site.brake = Brake()
    site.step()
    assert site.on(NEW) == ["node001"]


def test_resume_after_a_failure_acknowledges_it_and_opens_the_next_wave() -> None:
    site = Site(4, waves=[1, "100%"], max_unavailable="100%")
    site.step()
    site.agents_follow(healthy=False)
    site.step()
    site.brake = Brake(resumed_at=site.now)
    site.step()
    assert len(site.on(NEW)) == 4


def test_abort_returns_every_updated_node() -> None:
    site = Site(4, waves=[2, "100%"], max_unavailable="100%")
    site.step()
    site.brake = Brake(aborted=True)
    decision = site.step()
    assert decision.rollout is not None and decision.rollout.phase == "Aborted"
    assert site.on(NEW) == []


def test_a_newer_commit_supersedes_a_rollout_in_progress() -> None:
    site = Site(4, waves=[1, "100%"], max_unavailable="100%")
    site.step()
    site.agents_follow()
    decision = site.step(NEWER)
    assert decision.rollout is not None and decision.rollout.target == NEWER
    assert any("superseded" in event for event in decision.events)
    # node001 started from NEW; a rollback or abort would bring it back there.
    assert decision.rollout.previous["node001"] == NEW
    assert site.on(NEWER) == ["node001"]


def test_new_nodes_and_nodes_already_on_target_do_not_wait_for_waves() -> None:
    site = Site(3, waves=[1, "100%"])
    site.assigned.pop("node003")  # a machine registered just now
    decision = site.step()
    assert decision.assignments["node003"] == NEW
    assert site.rollout is not None and "node003" not in site.rollout.previous


def test_a_restart_mid_rollout_continues_from_the_stored_state() -> None:
    site = Site(6, waves=[1, "50%", "100%"], max_unavailable="100%")
    site.step()
    site.agents_follow()
    site.step()
    assert site.rollout is not None
    stored = json.dumps(site.rollout.to_dict())
    site.rollout = GroupRollout.from_dict(json.loads(stored))  # what a new process reads
    site.agents_follow()
    site.step()
    assert len(site.on(NEW)) == 6


def test_a_wrong_shaped_state_is_an_error_not_a_half_read() -> None:
    with pytest.raises((KeyError, TypeError, ValueError)):
        GroupRollout.from_dict({"group": "compute"})
    with pytest.raises(ValueError, match="phase"):
        data = GroupRollout("g", NEW, "r", {}).to_dict() | {"phase": "Sideways"}
        GroupRollout.from_dict(data)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("waves", [1, "50%"], "last wave must be '100%'"),
        ("waves", ["0%", "100%"], "between 1% and 100%"),
        ("max_unavailable", "ten", "not a node count"),
        ("timeout", "10 minutes", "not a duration"),
        ("on_failure", "retry", "pause"),
    ],
)
def test_bad_policies_are_refused_with_a_fix(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RolloutPolicy.model_validate({field: value})


def test_durations() -> None:
    assert parse_duration("10m") == 600
    assert parse_duration(90) == 90
    assert parse_duration("1h") == 3600


def test_nodes_quiet_between_heartbeats_are_not_offline_with_a_short_timeout() -> None:
    # An idle agent reports every 5 minutes; with a 2-minute wave timeout its node must
    # still be waited for, not moved at once as an offline node would be.
    site = Site(10, waves=[1, "100%"], max_unavailable=1, timeout="2m")
    site.silent.update(site.hosts)
    for host in site.hosts:
        site.reports[host] = replace(site.reports[host], reported_at=site.now - 240)
    site.step()
    decision = site.step()
    assert site.on(NEW) == ["node001"]
    assert decision.node_states["node001"] == "updating"
    assert decision.node_states["node002"] == "waiting"


def test_a_group_with_nothing_to_move_is_decided_without_reports() -> None:
    site = Site(5)
    first = site.step(OLD)  # every node already runs the group's image: nothing moves
    assert first.rollout is not None and not first.rollout.previous

    def settled(target: str) -> Decision | None:
        return decide_settled(
            hosts=site.hosts, target=target, rollout=site.rollout, policy=site.policy
        )

    decision = settled(OLD)
    assert decision is not None and decision.assignments == dict.fromkeys(site.hosts, OLD)
    assert settled(NEW) is None
    site.step(NEW)  # a rollout starts: nodes move, the shortcut steps aside
    assert site.rollout is not None and site.rollout.previous and settled(NEW) is None
