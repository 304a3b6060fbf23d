"""An image change rolls out over 200 nodes: real ``watch`` and ``serve``, simulated agents.

``reconciler watch`` (file targets: node-images and bootfiles) and ``reconciler
serve`` run as processes in one network namespace, on a git inventory with one
200-node group. The nodes are a TEST DOUBLE of the agent
(``tests/integration/agent_fleet.py``): it speaks the agent's HTTP protocol
(long polls of ``/nodes/<host>.json`` with ``If-None-Match``, reports in the
agent's format) but swaps nothing. Reports pass serve's real guard: the fleet
runs in the other namespace, each node's socket is bound to its inventory
address, each address sits on a macvlan with the node's inventory MAC (so
serve's answers reach it), and serve's side has a permanent neighbour entry
per address with that MAC.

Covered: a change rolls out in waves ``[1, 10%, 50%, 100%]`` with
``max_unavailable: 10%`` to all 200 nodes (Complete in status and in
``reconciler rollout status --format json``); a wave with failing health checks
and ``on_failure: pause`` (Degraded, failures with reasons, no further wave);
the same with ``rollback`` (the updated nodes are told the old version again
through their long polls). Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reconciler.config import load_config
from reconciler.engine import Engine
from reconciler.inventory.sources import FolderSource
from reconciler.sandbox.site import git
from reconciler.watch.status import StatusStore
from tests.integration.agent_fleet import AgentFleet
from tests.integration.netns import NetnsPair, create_pair, entered, run_in, wait_for

ROOT = Path(__file__).resolve().parents[2]
SERVER = "10.23.0.2"
NODES = 200
OLD, NEW = "compute@1.0", "compute@1.1"
FAILING = frozenset({"node0005", "node0012"})  # both in wave 2 (node0002..node0020)
ROLLOUT_WAIT = 90.0  # hang guard only


def image_yaml() -> str:
    lines = ["name: compute", "versions:"]
    for version, digit in (("1.0", "a"), ("1.1", "b")):
        lines.append(f'  "{version}":')
        for part in ("kernel", "initrd", "rootfs"):
            url = f"http://boot.cluster.example/compute/{version}/{part}"
            lines.append(f'    {part}: {{url: "{url}", sha256: "{digit * 64}"}}')
        lines.append('    cmdline: "console=ttyS0"')
    return "\n".join(lines) + "\n"


def mac_of(index: int) -> str:
    return f"52:54:00:77:{index >> 8:02x}:{index & 0xFF:02x}"


def group_yaml(*, image: str, on_failure: str) -> str:
    lines = [
        "name: compute", "subnet: 10.23.0.0/16", "gateway: 10.23.0.1",
        'hostname: "node%04d"', "first_address: 10.23.1.1", f"image: {image}",
        "rollout:", '  waves: [1, "10%", "50%", "100%"]', '  max_unavailable: "10%"',
        "  timeout: 2m", f"  on_failure: {on_failure}", "hosts:",
    ]  # fmt: skip
    for index in range(1, NODES + 1):
        lines += [f"  - index: {index}", f'    mac: "{mac_of(index)}"']
    return "\n".join(lines) + "\n"


CONFIG = f"""\
state_dir = "state"
[source]
repo = "repo"
rev = "main"
[boot]
http_url = "http://{SERVER}:8080"
tftp_server = "{SERVER}"
[targets.boot]
type = "bootfiles"
directory = "tftp"
[targets.images]
type = "node-images"
directory = "http"
[watch]
debounce = 0.02
local_poll_interval = 0.5
rollout_interval = 0.2
drift_interval = 3600
[serve]
listen = "{SERVER}"
port = 8080
refresh_seconds = 0.1
"""


def write_site(root: Path, *, on_failure: str) -> None:
    repo = root / "repo"
    (repo / "groups").mkdir(parents=True)
    (repo / "images").mkdir()
    (repo / "site.yaml").write_text("domain: cluster.example\nttl: 300\n")
    (repo / "images" / "compute.yaml").write_text(image_yaml())
    (repo / "groups" / "compute.yaml").write_text(group_yaml(image=OLD, on_failure=on_failure))
    (root / "reconciler.toml").write_text(CONFIG)
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "200 nodes on compute@1.0")


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", message)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from reconciler.cli import main; main()", *args],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


@pytest.fixture(scope="module")
def fleet_net(as_root: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsPair]:
    """serve's namespace and the nodes' namespace; each node address on a macvlan with its MAC.

    serve's side gets a permanent neighbour entry per node address with the
    node's inventory MAC: the kernel sends serve's answers to that MAC, which
    the node's macvlan receives, and serve's report guard finds it.
    """
    probe = tmp_path_factory.mktemp("probe")
    write_site(probe, on_failure="pause")
    nodes = node_table(probe)
    pair = create_pair(server_cidr=f"{SERVER}/16", client_cidr="10.23.0.3/16", prefix="ro")
    try:
        run_in(pair.client, ["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0",
                             "net.ipv4.conf.default.rp_filter=0"])  # fmt: skip
        client_batch, server_batch = [], []
        for index, (_host, (address, mac)) in enumerate(sorted(nodes.items())):
            name = f"n{index}"
            client_batch += [
                f"link add link {pair.client_if} name {name} address {mac} "
                "type macvlan mode private",
                f"addr add {address}/32 dev {name}",
                f"link set {name} up",
            ]
            server_batch.append(
                f"neigh replace {address} lladdr {mac} nud permanent dev {pair.server_if}"
            )
        for namespace, batch in ((pair.client, client_batch), (pair.server, server_batch)):
            subprocess.run(
                ["ip", "-n", namespace, "-batch", "-"], input="\n".join(batch) + "\n",
                text=True, check=True, capture_output=True, timeout=60,
            )  # fmt: skip
        yield pair
    finally:
        pair.destroy()


def node_table(root: Path) -> dict[str, tuple[str, str]]:
    """host -> (address, MAC) as the inventory compiles them."""
    engine = Engine(load_config(root / "reconciler.toml"))
    state = engine.compile(engine.load(FolderSource(root / "repo")))
    return {h.hostname: (h.ip, h.mac) for h in state.dhcp_hosts}


@dataclass
class Site:
    root: Path
    pair: NetnsPair
    fleet: AgentFleet

    @property
    def config(self) -> str:
        return str(self.root / "reconciler.toml")

    def log(self) -> str:
        return "".join(
            f"--- {name}\n{(self.root / name).read_text()[-3000:]}\n"
            for name in ("watch.log", "serve.log")
            if (self.root / name).exists()
        )

    def rollout_row(self) -> dict[str, Any] | None:
        rows = StatusStore(self.root / "state").load().rollouts
        return rows[0] if rows else None

    def wait(self, predicate: Any, what: str) -> None:
        try:
            wait_for(predicate, timeout=ROLLOUT_WAIT, interval=0.1, what=what)
        except TimeoutError as error:
            raise AssertionError(
                f"{error}\nrollout: {self.rollout_row()}\nfleet errors: "
                f"{self.fleet.errors[:5]}\n{self.log()}"
            ) from None

    def change_image(self) -> None:
        path = self.root / "repo" / "groups" / "compute.yaml"
        path.write_text(path.read_text().replace(f"image: {OLD}", f"image: {NEW}"))
        commit(self.root / "repo", "compute to 1.1")

    def new_ones(self) -> set[str]:
        """Hosts whose agent was told to run the new version at some point."""
        return {h for h, refs in self.fleet.refs().items() if NEW in refs}


def start(root: Path, pair: NetnsPair, name: str) -> subprocess.Popen[bytes]:
    with (root / f"{name}.log").open("ab") as log:
        return subprocess.Popen(
            ["ip", "netns", "exec", pair.server, sys.executable, "-c",
             "from reconciler.cli import main; main()", "--log-level", "info",
             name, "-c", str(root / "reconciler.toml")],
            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=log, stderr=subprocess.STDOUT,
            cwd=ROOT,
        )  # fmt: skip


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@pytest.fixture
def make_site(fleet_net: NetnsPair, tmp_path: Path) -> Iterator[Any]:
    """A site with ``on_failure``: watch and serve running, 200 agents reporting compute@1.0."""
    processes: list[subprocess.Popen[bytes]] = []
    fleets: list[AgentFleet] = []

    def make(*, on_failure: str, failing: frozenset[str] = frozenset()) -> Site:
        write_site(tmp_path, on_failure=on_failure)
        nodes = node_table(tmp_path)
        processes.append(start(tmp_path, fleet_net, "watch"))
        processes.append(start(tmp_path, fleet_net, "serve"))
        fleet = AgentFleet(
            server_url=f"http://{SERVER}:8080", namespace=fleet_net.client,
            nodes={host: address for host, (address, _mac) in nodes.items()},
            failing={NEW: failing},
        )  # fmt: skip
        site = Site(tmp_path, fleet_net, fleet)
        site.wait(lambda: serve_ready(fleet_net), "serve answering the accepted revision")
        fleet.start()
        fleets.append(fleet)
        reports = tmp_path / "state" / "reports"
        site.wait(lambda: len(list(reports.glob("*.json"))) == NODES, "200 first reports")
        assert site.fleet.errors == []
        return site

    yield make
    for fleet in fleets:
        fleet.stop()
    for process in processes:
        stop(process)


def serve_ready(pair: NetnsPair) -> bool:
    with entered(pair.client):
        try:
            with urllib.request.urlopen(f"http://{SERVER}:8080/nodes/node0001.json", timeout=1):
                return True
        except OSError:
            return False


def test_an_image_change_reaches_all_200_nodes_in_waves(make_site: Any) -> None:
    site: Site = make_site(on_failure="pause")
    site.change_image()
    site.wait(lambda: (site.rollout_row() or {}).get("phase") == "Complete", "Complete")
    site.wait(lambda: set(site.fleet.running.values()) == {NEW}, "every agent on 1.1")

    shown = cli("rollout", "status", "compute", "--format", "json", "-c", site.config)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    (row,) = json.loads(shown.stdout)
    assert (row["phase"], row["target"], row["wave"], row["waves"]) == ("Complete", NEW, 4, 4)
    assert row["versions"] == {NEW: NODES}
    assert row["states"] == {"healthy": NODES}
    assert row["failures"] == {}
    status = json.loads(cli("status", "--format", "json", "-c", site.config).stdout)
    assert status["nodes"]["by_version"] == {NEW: NODES}
    assert [(r["group"], r["phase"]) for r in status["rollouts"]] == [("compute", "Complete")]

    # The waves as the nodes lived them: node0001 alone first, and every node
    # told to move only after the one before it in its wave's order could be healthy.
    got = {h: next(s.at for s in seen if s.ref == NEW) for h, seen in site.fleet.seen.items()}
    order = sorted(got, key=got.__getitem__)
    assert order[0] == "node0001"
    assert min(got[h] for h in order[1:]) > got["node0001"] + site.fleet.swap_seconds
    # Never more than max_unavailable (20) nodes swapping at once.
    swap = site.fleet.swap_seconds
    moving = sorted([(at, 1) for at in got.values()] + [(at + swap, -1) for at in got.values()])
    busiest = max(sum(step for _, step in moving[: i + 1]) for i in range(len(moving)))
    assert 1 < busiest <= 20
    watch_log = (site.root / "watch.log").read_text().splitlines()
    opened = [line for line in watch_log if "wave " in line and " opens " in line]
    assert len(opened) == 4, opened
    sizes = ("(1 of 200", "(20 of 200", "(100 of 200", "(200 of 200")
    assert all(size in wave for wave, size in zip(opened, sizes, strict=True)), opened
    assert site.fleet.errors == []


def test_a_failing_wave_with_pause_stops_degraded_and_names_the_nodes(make_site: Any) -> None:
    site: Site = make_site(on_failure="pause", failing=FAILING)
    site.change_image()
    site.wait(
        lambda: set((site.rollout_row() or {}).get("failures", {})) == FAILING,
        "both failures recorded",
    )
    row = site.rollout_row()
    assert row is not None and row["phase"] == "Degraded"
    assert row["wave"] == 2
    site.wait(lambda: len(site.fleet.reported) == NODES and len(site.new_ones()) == 20, "wave 2")
    time.sleep(1.5)  # several rollout passes (every 0.2 s): still no third wave
    assert len(site.new_ones()) == 20
    assert site.new_ones() == {f"node{i:04d}" for i in range(1, 21)}

    shown = cli("rollout", "status", "compute", "--format", "json", "-c", site.config)
    assert shown.returncode == 2, shown.stdout + shown.stderr
    (row,) = json.loads(shown.stdout)
    assert row["phase"] == "Degraded"
    assert row["versions"] == {OLD: 180, NEW: 20}
    for host in FAILING:
        assert "health check failed on compute@1.1" in row["failures"][host]
        assert "app-ready" in row["failures"][host]
    assert row["states"]["failed"] == 2 and row["states"]["healthy"] == 18
    assert site.fleet.errors == []


def test_a_failing_wave_with_rollback_returns_the_updated_nodes(make_site: Any) -> None:
    site: Site = make_site(on_failure="rollback", failing=FAILING)
    site.change_image()
    site.wait(lambda: (site.rollout_row() or {}).get("phase") == "RolledBack", "RolledBack")
    site.wait(
        lambda: (
            all(refs[-1] == OLD for refs in site.fleet.refs().values())
            and set(site.fleet.running.values()) == {OLD}
        ),
        "every agent told 1.0 again",
    )
    moved = site.new_ones()
    assert moved and moved <= {f"node{i:04d}" for i in range(1, 21)} and moved >= FAILING
    refs = site.fleet.refs()
    for host in moved:
        assert refs[host] == [OLD, NEW, OLD], (host, refs[host])
    assert all(refs[h] == [OLD] for h in set(refs) - moved)

    shown = cli("rollout", "status", "compute", "--format", "json", "-c", site.config)
    assert shown.returncode == 2, shown.stdout + shown.stderr
    (row,) = json.loads(shown.stdout)
    assert row["phase"] == "RolledBack" and row["versions"] == {OLD: NODES}
    assert row["failures"] and set(row["failures"]) <= FAILING
    assert all("health check failed" in reason for reason in row["failures"].values())
    stored = [json.loads(p.read_text()) for p in (site.root / "state/reports").glob("*.json")]
    assert {r["version"] for r in stored} == {"1.0"} and len(stored) == NODES
    assert site.fleet.errors == []
