"""The watch loop plans a commit from the previous revision's objects (reused groups, key
maps): whatever the order of commits, what it leaves on disk is what a fresh ``plan``
finds nothing to change in."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from typer.testing import CliRunner

from reconciler.cli import app as cli
from reconciler.watch.loop import WatchLoop
from reconciler.watch.status import Status
from tests.unit.watch_fixture import WatchSite, ready, wait_status

Start = Callable[[WatchLoop], WatchLoop]
runner = CliRunner()
COMPUTE = "groups/compute.yaml"


def extra_hosts(first: int, count: int) -> str:
    return "".join(
        f'  - index: {i}\n    mac: "52:54:00:12:35:{i:02x}"\n' for i in range(first, first + count)
    )


def stalled(status: Status) -> bool:
    condition = status.condition("Stalled")
    return condition is not None and condition.status


def fresh_plan_is_empty(site: WatchSite) -> bool:
    result = runner.invoke(cli, ["plan", "-c", str(site.config_path)])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code == 0


def test_a_refused_commit_then_others_leave_what_a_fresh_plan_wants(
    watch_site: WatchSite, running: Start
) -> None:
    compute = watch_site.repo / COMPUTE
    compute.write_text(compute.read_text() + extra_hosts(40, 16))
    first = watch_site.commit("16 more hosts")
    loop = running(watch_site.loop())
    wait_status(loop, lambda s: ready(s) and s.applied_revision == first)
    # Every compute node's boot files at once: more than 30% of what boot owns, refused.
    watch_site.edit(COMPUTE, "image: compute@2024.10", "boot: local\nimage: compute@2024.10")
    refused = watch_site.commit("compute boots from disk")
    status = wait_status(loop, lambda s: s.attempted_revision == refused and stalled(s))
    condition = status.condition("Stalled")
    assert condition is not None and condition.reason == "PlanRefused"
    assert status.applied_revision == first
    # Back, and one host more: planned from live state (the targets are not at the
    # refused revision), then one host less: planned from the revisions' difference.
    watch_site.edit(COMPUTE, "boot: local\n", "")
    compute.write_text(compute.read_text() + extra_hosts(60, 1))
    after = watch_site.commit("back, and one host more")
    wait_status(loop, lambda s: ready(s) and s.applied_revision == after)
    assert fresh_plan_is_empty(watch_site)
    compute.write_text(compute.read_text().replace(extra_hosts(45, 1), ""))
    last = watch_site.commit("one host less")
    status = wait_status(loop, lambda s: ready(s) and s.applied_revision == last)
    assert status.targets["dhcp"].applied == 1  # node045's entry, no more
    assert "node045" not in watch_site.out("dhcpd.hosts.conf")
    assert fresh_plan_is_empty(watch_site)


def test_a_group_setting_reaches_every_host_of_the_group(
    watch_site: WatchSite, running: Start
) -> None:
    loop = running(watch_site.loop())
    wait_status(loop, ready)
    gpu = "groups/gpu.yaml"
    watch_site.edit(gpu, "image: compute@2024.11", "boot: local\nimage: compute@2024.11")
    changed = watch_site.commit("the GPU nodes boot from disk")
    status = wait_status(loop, lambda s: ready(s) and s.applied_revision == changed)
    assert status.targets["boot"].applied == 4  # both files of both GPU nodes
    assert fresh_plan_is_empty(watch_site)


def test_a_pass_runs_without_the_cyclic_collector_and_gives_it_back(
    watch_site: WatchSite, running: Start
) -> None:
    loop = watch_site.loop()
    seen: list[bool] = []
    compile_revision = loop.engine.compile

    def compile_and_look(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return compile_revision(*args, **kwargs)

    loop.engine.compile = compile_and_look  # type: ignore[method-assign]
    running(loop)
    wait_status(loop, ready)  # saved at the end of the pass, still inside it
    deadline = time.monotonic() + 10
    while not gc.isenabled() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen and not any(seen) and gc.isenabled()


def test_the_start_up_pass_makes_the_key_maps_the_first_commit_plans_from(
    watch_site: WatchSite, running: Start
) -> None:
    loop = running(watch_site.loop())
    first = wait_status(loop, ready).applied_revision
    start_up = loop.good
    assert start_up is not None and start_up.commit == first
    assert set(start_up._keys) == {t.name for t in loop.engine.targets}
    for target in loop.engine.targets:
        assert start_up._keys[target.name] == {r.key: r for r in start_up.desired(target)}
    watch_site.edit(COMPUTE, '"52:54:00:12:34:0b"', '"52:54:00:12:34:bb"')
    head = watch_site.commit("new NIC for node011")
    wait_status(loop, lambda s: s.applied_revision == head and ready(s))
    assert "52:54:00:12:34:bb" in watch_site.out("dhcpd.hosts.conf")
    assert fresh_plan_is_empty(watch_site)
