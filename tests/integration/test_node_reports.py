"""The node agent against a real ``reconciler serve``, across a veth, with a real neighbour table.

serve runs as a process in one namespace (10.23.45.2); the "node" is the
other namespace, with node010's address and MAC. The agent zipapp runs there
once: it fetches its assignment and reports, and serve stores the report
because the kernel's neighbour entry for 10.23.45.10 shows node010's MAC.
With another MAC on the node's NIC, or from another host's address, the
same report is refused.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.accepted import AcceptedRevision, AcceptedStore, revision_of
from reconciler.agent.build import write_zipapp
from reconciler.agent.client import HttpServer, ServerError
from reconciler.inventory.sources import GitSource
from tests.integration.netns import NetnsPair, entered, run_in

ROOT = Path(__file__).resolve().parents[2]
SERVER = "10.23.45.2"
NODE010 = ("10.23.45.10", "52:54:00:12:34:0a")
KERNEL_SHA = "e9a9c4267c93834b6a7d594b6b641ce8b3bbada1d0f2b155d6f1df2d39863bb9"
ROOTFS_SHA = "7fa3c6c162913190cee936f34e9aab9180a3ac70213f4465c160820f1f894466"


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def site(tmp_path: Path, make_pair: Callable[..., NetnsPair]) -> Iterator[tuple[NetnsPair, Path]]:
    """The example inventory in git, accepted, served from the server namespace."""
    repo = shutil.copytree(ROOT / "inventory-example", tmp_path / "inventory")
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, timeout=30)
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "site")
    source = GitSource(repo, "main", "")
    state = tmp_path / "state"
    AcceptedStore(state).record(AcceptedRevision.of(source, revision_of(source), by="apply"))
    config = tmp_path / "reconciler.toml"
    config.write_text(
        f'state_dir = "{state}"\n[source]\nrepo = "{repo}"\nrev = "main"\n'
        f'[boot]\nhttp_url = "http://{SERVER}:8080"\ntftp_server = "{SERVER}"\n'
        f'[serve]\nlisten = "{SERVER}"\nport = 8080\nrefresh_seconds = 0.2\n'
    )
    pair = make_pair(server_cidr=f"{SERVER}/24", client_cidr=f"{NODE010[0]}/24")
    pair.set_client_mac(NODE010[1])
    with (tmp_path / "serve.log").open("wb") as log:
        serve = subprocess.Popen(
            ["ip", "netns", "exec", pair.server, sys.executable, "-c",
             "from reconciler.cli import main; main()", "serve", "-c", str(config)],
            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def stop_serve() -> None:
        serve.terminate()
        serve.wait(10)

    pair.on_cleanup(stop_serve)
    with entered(pair.client):
        for _ in range(300):  # serve needs a few seconds to import and compile
            try:
                with urllib.request.urlopen(f"http://{SERVER}:8080/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if serve.poll() is not None:
                pytest.fail("serve exited:\n" + (tmp_path / "serve.log").read_text()[-2000:])
            time.sleep(0.1)
        else:
            pytest.fail("serve did not answer:\n" + (tmp_path / "serve.log").read_text()[-2000:])
    yield pair, tmp_path


def test_the_agent_reports_through_the_guard_and_others_are_refused(
    site: tuple[NetnsPair, Path],
) -> None:
    pair, tmp_path = site
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "current.json").write_text(json.dumps({
        "image": "compute", "version": "2024.10", "kernel_sha256": KERNEL_SHA,
        "rootfs_sha256": ROOTFS_SHA, "stage": str(run_dir / "stage" / ROOTFS_SHA),
        "booted_by": "initramfs",
    }))  # fmt: skip
    agent = write_zipapp(tmp_path / "agent.pyz")
    result = run_in(pair.client, [
        "/usr/bin/python3", "-I", str(agent), "--server", f"http://{SERVER}:8080",
        "--host", "node010", "--run-dir", str(run_dir), "--health-dir", str(tmp_path / "none"),
        "--once",
    ], timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert '"outcome": "same"' in result.stderr
    stored = json.loads((tmp_path / "state/reports/node010.json").read_text())
    assert (stored["version"], stored["state"], stored["remote"]) == (
        "2024.10",
        "running",
        NODE010[0],
    )
    assert stored["boot_id"] == Path("/proc/sys/kernel/random/boot_id").read_text().strip()

    body = {**stored, "boot_id": "forged"}
    client = HttpServer(f"http://{SERVER}:8080", "node010", timeout=10)
    pair.set_client_mac("52:54:00:66:66:66")  # another machine on node010's address
    run_in(pair.server, ["ip", "neigh", "flush", "dev", pair.server_if])
    with entered(pair.client), pytest.raises(ServerError) as refused:
        client.report(body)
    assert "403" in str(refused.value) and "52:54:00:66:66:66" in str(refused.value)

    pair.set_client_mac(NODE010[1])  # node010's MAC, but from node011's address
    run_in(pair.client, ["ip", "addr", "flush", "dev", pair.client_if])
    run_in(pair.client, ["ip", "addr", "add", "10.23.45.11/24", "dev", pair.client_if])
    with entered(pair.client), pytest.raises(ServerError) as refused:
        client.report(body)
    assert "accepted from 10.23.45.10 only, not 10.23.45.11" in str(refused.value)
    stored_again = json.loads((tmp_path / "state/reports/node010.json").read_text())
    assert stored_again["boot_id"] != "forged"

    status = subprocess.run(
        [sys.executable, "-c", "from reconciler.cli import main; main()", "status",
         "-c", str(tmp_path / "reconciler.toml")],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert "nodes:      1 reporting" in status.stdout, status.stdout + status.stderr
    assert "versions: compute@2024.10 1" in status.stdout
