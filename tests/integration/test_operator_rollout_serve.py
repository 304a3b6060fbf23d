"""serve beside the operator answers each node the version its rollout wave says.

In a cluster the operator decides the rollout waves, and ``reconciler serve``
runs in a pod of its own (deploy/kubernetes/serve.yaml): it sees only the
ConfigMap ``site-<name>-accepted`` mounted at /accepted. The operator publishes
there the accepted record and the rollout assignments, so a node whose group
moves to a new image is told the new version only when its wave opens.

The Kubernetes API is the stand-in of test_operator_kmock.py (kube_apiserver.py
says why: no real apiserver can run on these machines), and so is the kubelet's
ConfigMap volume: ``mount`` writes the ConfigMap's keys the way the kubelet does
(files that are symlinks into a ``..data`` folder, swapped in one rename). The
operator's code, git, ``reconciler serve`` (a process, with the manifest's
settings) and its HTTP answers are real.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reconciler.sandbox.named import free_port
from reconciler.sandbox.netns import popen_in, stop_process
from tests.integration.test_operator_kmock import (
    CONFIGMAPS,
    Cluster,
    applied,
    cluster,
    condition,
    operator,
)

__all__ = ["cluster"]  # the fixture, shared with test_operator_kmock.py

RECONCILER = str(Path(sys.executable).parent / "reconciler")
OLD, NEW = "compute@2024.10", "compute@2024.11"
ROLLING = ("node010", "node011", "node012", "node013")  # node014 has an image of its own


def mount(configmap: dict[str, Any], folder: Path) -> None:
    """Write a ConfigMap into ``folder`` as the kubelet does: every key swaps at once."""
    folder.mkdir(exist_ok=True)
    version = folder / f"..{time.monotonic_ns()}"
    version.mkdir()
    for key, text in (configmap.get("data") or {}).items():
        (version / key).write_text(text)
    for key, encoded in (configmap.get("binaryData") or {}).items():
        (version / key).write_bytes(base64.b64decode(encoded))
    for key in os.listdir(version):
        if not (folder / key).is_symlink():
            (folder / key).symlink_to(Path("..data") / key)
    (folder / "..data_tmp").symlink_to(version.name)
    (folder / "..data_tmp").rename(folder / "..data")


@contextmanager
def serve(
    cluster: Cluster,
    accepted: Path,
    *,
    listen: str = "127.0.0.1",
    port: int | None = None,
    netns: str | None = None,
    settings: str = "",
) -> Iterator[str]:
    """``reconciler serve`` configured as deploy/kubernetes/serve.yaml does; its URL.

    It listens on ``listen``:``port`` (a free port when None), inside ``netns`` when
    given; ``settings`` are more lines of its ``[serve]`` section.
    """
    port = port or free_port()
    config = cluster.root / "serve.toml"
    config.write_text(f"""state_dir = "{cluster.root / "serve-state"}"
[source]
repo = "{cluster.root / "serve-state/serve/mirror.git"}"
rev = "main"
[boot]
http_url = "http://10.23.45.2:8080"
[serve]
listen = "{listen}"
port = {port}
refresh_seconds = 0.1
mirror_url = "{cluster.repo}"
accepted_file = "{accepted / "accepted.json"}"
assignments_file = "{accepted / "assignments.json.gz"}"
{settings}""")
    command = [RECONCILER, "serve", "-c", str(config)]
    with (cluster.root / "serve.log").open("wb") as log:
        if netns:
            process = popen_in(netns, command, stdout=log, stderr=log)
        else:
            process = subprocess.Popen(command, stdout=log, stderr=log)
    try:
        yield f"http://{listen}:{port}"
    finally:
        stop_process(process)


def versions(url: str, hosts: tuple[str, ...]) -> dict[str, str]:
    """What serve tells each node agent asking for its assignment (``/nodes/<host>.json``)."""
    found = {}
    for host in hosts:
        try:
            with urllib.request.urlopen(f"{url}/nodes/{host}.json", timeout=5) as response:
                body = json.load(response)
        except OSError:  # not up yet, or no accepted revision yet (503)
            return {}
        found[host] = f"{body['image']}@{body['version']}"
    return found


def wait_for(what: str, check: Any, cluster: Cluster, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.2)
    log = (cluster.root / "serve.log").read_text() if (cluster.root / "serve.log").exists() else ""
    raise AssertionError(f"{what}: not reached in {timeout} s\n{log}")


def test_serve_in_a_cluster_answers_each_node_the_version_of_its_wave(cluster: Cluster) -> None:
    accepted = cluster.root / "accepted"
    configmap = f"{CONFIGMAPS}/site-lab-accepted"
    with operator():
        cluster.site()
        cluster.wait("Ready", lambda s: condition(s, "Ready").get("status") == "True")
        mount(wait_for("accepted published", lambda: cluster.client.get(configmap), cluster),
              accepted)  # fmt: skip
        with serve(cluster, accepted) as url:
            everyone_old = dict.fromkeys(ROLLING, OLD)
            wait_for("serve answers the first revision",
                     lambda: versions(url, ROLLING) == everyone_old, cluster)  # fmt: skip

            # The group moves to the next image: the default waves are 1, 10%, 50%, 100%,
            # and with no agent reporting a healthy node, the first wave stays the only one.
            newer = cluster.commit("groups/compute.yaml", f"image: {OLD}", f"image: {NEW}")
            site = cluster.wait("the new image's rollout started", lambda s: applied(s) == newer)
            (rollout,) = [r for r in site["status"]["rollouts"] if r["group"] == "compute"]
            assert rollout["phase"] == "Progressing" and rollout["wave"] == 1
            assert rollout["versions"] == {NEW: 1, OLD: 3}

            def published() -> dict[str, str] | None:
                found = cluster.client.get(configmap)
                assert found is not None
                packed = base64.b64decode(found["binaryData"]["assignments.json.gz"])
                assignments: dict[str, str] = json.loads(gzip.decompress(packed))
                if json.loads(found["data"]["accepted.json"])["revision"] != newer:
                    return None
                mount(found, accepted)  # the kubelet brings the new keys to serve's pod
                return assignments

            assignments = wait_for("the wave published", published, cluster)
            wave = {host for host in ROLLING if assignments[host] == NEW}
            assert len(wave) == 1

            def moved() -> dict[str, str] | None:
                answered = versions(url, ROLLING)
                return answered if answered and answered != everyone_old else None

            answered = wait_for("serve answers the wave", moved, cluster)
            # The node of the first wave is told the new version, the others keep theirs.
            assert answered == {h: NEW if h in wave else OLD for h in ROLLING}
