"""The operator's rollouts follow the node reports that serve, in its own pod, keeps.

In a cluster node agents report to ``reconciler serve`` (deploy/kubernetes/serve.yaml),
and the operator decides the rollout waves in another pod: it pulls the reports
from serve's ``GET /reports`` (a Site's ``spec.reports``, with the token Secret).
A healthy wave-1 node lets the next wave open; while serve cannot be reached the
rollout waits, and no node counts as failed for a timeout it could not report in.

The Kubernetes API is the stand-in of test_operator_kmock.py (kube_apiserver.py
says why: no real apiserver can run on these machines), and so is the kubelet's
ConfigMap volume (``mount``). Everything else is real: the operator's code, git,
``reconciler serve`` as a process in a network namespace of its own, on the
compute subnet's address, and the node's report, sent from node010's own address
and MAC in a second namespace over a veth, so serve's neighbour check passes as
on a real link. The operator in the test's process reaches serve through a relay
on 127.0.0.1 (``reconciler.sandbox.relay``).
"""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from reconciler.sandbox.netns import NetnsPair, entered, netns_pair
from reconciler.sandbox.relay import Relay
from tests.integration.test_operator_kmock import (
    CONFIGMAPS,
    NS,
    Cluster,
    applied,
    cluster,
    condition,
    operator,
)
from tests.integration.test_operator_rollout_serve import NEW, OLD, mount, serve, wait_for

__all__ = ["cluster"]  # the fixture, shared with test_operator_kmock.py

SERVE_IP, PORT = "10.23.45.2", 8080
NODE, NODE_IP, NODE_MAC = "node010", "10.23.45.10", "52:54:00:12:34:0a"  # compute.yaml
TOKEN = "reports-token-for-the-test"
TIMEOUT = 20  # the compute group's rollout timeout, seconds


def rollout_of(site: dict[str, Any]) -> dict[str, Any]:
    found = [r for r in (site.get("status") or {}).get("rollouts") or [] if r["group"] == "compute"]
    return found[0] if found else {}


@contextmanager
def relay_to_serve(pair: NetnsPair) -> Iterator[Relay]:
    """127.0.0.1:<port> -> serve's address in the server namespace (up or not)."""
    relay = Relay(pair.server, host=SERVE_IP, port=PORT)
    try:
        yield relay
    finally:
        relay.close()


def serve_on_the_link(
    cluster: Cluster, pair: NetnsPair, accepted: Path
) -> AbstractContextManager[str]:
    """``reconciler serve`` in the server namespace, with GET /reports on."""
    (cluster.root / "reports-token").write_text(TOKEN + "\n")
    token_file = f'reports_token_file = "{cluster.root / "reports-token"}"\n'
    return serve(cluster, accepted, listen=SERVE_IP, port=PORT, netns=pair.server,
                 settings=token_file)  # fmt: skip


def report_healthy(pair: NetnsPair, ref: str) -> int:
    """node010's agent: it runs ``ref`` and its checks pass (from its own address)."""
    image, _, version = ref.partition("@")
    body = {
        "host": NODE, "image": image, "version": version, "assigned": version,
        "state": "running", "boot_id": "boot-1", "agent_version": "test",
        "health": {"ok": True, "checks": [{"name": "ready", "ok": True, "output": ""}]},
    }  # fmt: skip
    request = urllib.request.Request(
        f"http://{SERVE_IP}:{PORT}/nodes/{NODE}/report",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with entered(pair.client), urllib.request.urlopen(request, timeout=10) as answer:
        return int(answer.status)


def pulled(url: str, token: str | None) -> int:
    """The status serve answers GET /reports with."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10):
            return 200
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:  # serve is not listening yet
        return 0


@pytest.fixture
def link() -> Iterator[NetnsPair]:
    with netns_pair(server_cidr=f"{SERVE_IP}/24", client_cidr=f"{NODE_IP}/24",
                    prefix="rep") as pair:  # fmt: skip
        pair.set_client_mac(NODE_MAC)
        yield pair


def prepare(cluster: Cluster) -> None:
    """A short rollout timeout for the compute group, and the token's Secret."""
    cluster.commit("groups/compute.yaml", f"image: {OLD}", f"image: {OLD}\nrollout:\n"
                   f"  timeout: {TIMEOUT}")  # fmt: skip
    cluster.client.create(f"/api/v1/namespaces/{NS}/secrets", {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "serve-reports", "namespace": NS,
                     "labels": {"reconciler.dev/secret": "true"}},
        "data": {"token": base64.b64encode(TOKEN.encode()).decode()},
    })  # fmt: skip


def reports_spec(relay: Relay) -> dict[str, Any]:
    return {"url": f"http://127.0.0.1:{relay.local_port}",
            "tokenSecretRef": {"name": "serve-reports", "key": "token"}}  # fmt: skip


def test_reports_pulled_from_serve_move_waves_and_an_outage_fails_no_node(
    cluster: Cluster, link: NetnsPair
) -> None:
    prepare(cluster)
    accepted = cluster.root / "accepted"
    configmap = f"{CONFIGMAPS}/site-lab-accepted"
    with operator(), relay_to_serve(link) as relay, serve_on_the_link(cluster, link, accepted):
        url = f"http://127.0.0.1:{relay.local_port}"
        cluster.site(reports=reports_spec(relay))
        cluster.wait("Ready", lambda s: condition(s, "Ready").get("status") == "True")
        mount(wait_for("accepted published", lambda: cluster.client.get(configmap), cluster),
              accepted)  # fmt: skip
        wait_for("serve answers", lambda: pulled(f"{url}/reports", TOKEN) == 200, cluster)
        # The reports are the token's only: without it, or with another, serve says no.
        assert pulled(f"{url}/reports", None) == 401
        assert pulled(f"{url}/reports", "not-the-token") == 401

        newer = cluster.commit("groups/compute.yaml", f"image: {OLD}", f"image: {NEW}")
        site = cluster.wait("wave 1 opened", lambda s: applied(s) == newer and bool(rollout_of(s)))
        assert rollout_of(site)["wave"] == 1 and rollout_of(site)["versions"] == {NEW: 1, OLD: 3}

        # node010, the first wave, boots the new image and says it is healthy, to serve.
        assert report_healthy(link, NEW) == 200
        site = cluster.wait(
            "the next wave opened after the healthy report",
            lambda s: rollout_of(s).get("versions") == {NEW: 2, OLD: 2},
        )
        rollout = rollout_of(site)
        assert rollout["phase"] == "Progressing" and rollout["wave"] >= 2
        assert rollout["failures"] == {}

        # serve goes away: node011, assigned now, cannot report. Past its timeout it has
        # not failed: the rollout waits, and the Site says why.
        relay.close()
        gone = time.monotonic()
        site = cluster.wait("the outage in status", lambda s: bool(s["status"].get("rolloutError")))
        assert "node reports unavailable" in site["status"]["rolloutError"]
        while time.monotonic() - gone < TIMEOUT + 12:  # two rollout passes past the timeout
            time.sleep(1)
            rollout = rollout_of(cluster.get() or {})
            assert rollout["phase"] == "Progressing", rollout
            assert rollout["failures"] == {}, rollout
        events = cluster.client.get(f"/api/v1/namespaces/{NS}/events") or {}
        reasons = {e["reason"]: e["message"] for e in events.get("items", [])}
        assert "node reports unavailable" in reasons.get("RolloutWaiting", "")


def test_a_rollout_waits_for_serve_and_starts_when_it_answers(
    cluster: Cluster, link: NetnsPair
) -> None:
    prepare(cluster)
    accepted = cluster.root / "accepted"
    with operator(), relay_to_serve(link) as relay:
        cluster.site(reports=reports_spec(relay))  # serve is not running yet
        cluster.wait("Ready", lambda s: condition(s, "Ready").get("status") == "True")
        newer = cluster.commit("groups/compute.yaml", f"image: {OLD}", f"image: {NEW}")
        site = cluster.wait("the new revision applied", lambda s: applied(s) == newer)
        site = cluster.wait("the wait in status", lambda s: bool(s["status"].get("rolloutError")))
        assert "node reports unavailable" in site["status"]["rolloutError"]
        # No node moved: every compute node keeps the old image while nothing is known.
        assert not rollout_of(site)
        assert site["status"]["inventory"]["nodesByVersion"][OLD] == 4

        mount(cluster.client.get(f"{CONFIGMAPS}/site-lab-accepted") or {}, accepted)
        with serve_on_the_link(cluster, link, accepted):
            site = cluster.wait(
                "wave 1 opened once serve answers",
                lambda s: rollout_of(s).get("versions") == {NEW: 1, OLD: 3},
            )
            assert rollout_of(site)["phase"] == "Progressing"
            assert not site["status"].get("rolloutError")
