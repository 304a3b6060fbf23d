"""The operator end to end: kopf's KopfRunner, a stand-in apiserver, a real git repository.

The Kubernetes API is a stand-in (tests/integration/kube_apiserver.py says why and
how strict it is); everything else is real: the operator's own code exactly as
it runs in a cluster, git fetching the inventory from a repository, the watch
loop's engine writing the targets. These tests use the file targets, so they
are fast; test_operator_services.py drives real dhcpd and named.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner

from reconciler.operator.kube import Credentials, KubeClient
from reconciler.sandbox.site import git
from tests.integration.kube_apiserver import RunningApiserver, apiserver

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory-example"
NS = "sites"
SITES = f"/apis/reconciler.dev/v1alpha1/namespaces/{NS}/sites"
CONFIGMAPS = f"/api/v1/namespaces/{NS}/configmaps"


class Cluster:
    """The stand-in apiserver, a git repository, and what the test reads back."""

    def __init__(self, api: RunningApiserver, root: Path) -> None:
        self.api = api
        self.root = root
        self.client = KubeClient(Credentials(server=api.url))
        self.repo = root / "inventory"
        self.out = root / "out"

    def commit(self, relative: str, old: str, new: str) -> str:
        path = self.repo / relative
        path.write_text(path.read_text().replace(old, new))
        git(self.repo, "commit", "-qam", f"edit {relative}")
        return git(self.repo, "rev-parse", "HEAD")

    def site(self, name: str = "lab", **spec: Any) -> dict[str, Any]:
        body = {
            "apiVersion": "reconciler.dev/v1alpha1",
            "kind": "Site",
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "source": {"url": str(self.repo), "ref": "main"},
                "interval": 1,
                "boot": {"http_url": "http://10.23.45.2:8080"},
                "targets": [
                    {"name": "dhcp", "type": "dhcp-file",
                     "settings": {"path": str(self.out / "dhcpd.hosts.conf")}},
                    {"name": "images", "type": "node-images",
                     "settings": {"directory": str(self.out / "http")}},
                ],
                **spec,
            },
        }  # fmt: skip
        return self.client.create(SITES, body)

    def get(self, name: str = "lab") -> dict[str, Any] | None:
        return self.client.get(f"{SITES}/{name}")

    def wait(
        self, what: str, check: Callable[[dict[str, Any]], bool], timeout: float = 60
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        site: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            site = self.get()
            if site is not None and check(site):
                return site
            time.sleep(0.2)
        raise AssertionError(f"{what}: not reached in {timeout} s; last: {site}")


def applied(site: dict[str, Any]) -> str | None:
    revision: str | None = (site.get("status") or {}).get("lastAppliedRevision")
    return revision


def condition(site: dict[str, Any], kind: str) -> dict[str, Any]:
    for found in (site.get("status") or {}).get("conditions") or []:
        if found["type"] == kind:
            return dict(found)
    return {}


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    repo = tmp_path / "inventory"
    shutil.copytree(EXAMPLE, repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first")
    with apiserver() as api:
        monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(tmp_path / "kubeconfig")))
        monkeypatch.setenv("RECONCILER_OPERATOR_WORK_DIR", str(tmp_path / "work"))
        from reconciler.operator import handlers

        monkeypatch.setattr(handlers.Settings, "work_root", tmp_path / "work")
        made = Cluster(api, tmp_path)
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
        made.client.create("/api/v1/namespaces", namespace)
        yield made


def operator() -> KopfRunner:
    return KopfRunner(
        ["run", "--standalone", "--namespace", NS, "-m", "reconciler.operator.handlers"],
        timeout=60,
    )


def test_a_site_becomes_ready_and_follows_commits(cluster: Cluster) -> None:
    head = git(cluster.repo, "rev-parse", "HEAD")
    with operator():
        cluster.site()
        site = cluster.wait("Ready", lambda s: condition(s, "Ready").get("status") == "True")
        status = site["status"]
        assert status["lastAppliedRevision"] == head
        assert status["observedGeneration"] == site["metadata"]["generation"]
        assert status["inventory"]["hosts"] == 8
        assert "node010" in (cluster.out / "dhcpd.hosts.conf").read_text()

        newer = cluster.commit("groups/compute.yaml", "index: 13", "index: 19")
        cluster.wait("new commit applied", lambda s: s["status"]["lastAppliedRevision"] == newer)
        assert "node019" in (cluster.out / "dhcpd.hosts.conf").read_text()

        bad = cluster.commit("groups/compute.yaml", "gateway: 10.23.45.1", "gatway: 10.23.45.1")
        site = cluster.wait("Stalled", lambda s: condition(s, "Stalled").get("status") == "True")
        assert bad[:12] in condition(site, "Stalled")["message"]
        assert site["status"]["lastAppliedRevision"] == newer  # the last good one stays
        assert site["status"]["lastAttemptedRevision"] == bad

        # The Event is posted after the status that says Stalled: wait for it, bounded.
        reasons: set[str] = set()
        deadline = time.monotonic() + 30
        while not {"Applied", "Refused"} <= reasons and time.monotonic() < deadline:
            time.sleep(0.2)
            events = cluster.client.list(f"/api/v1/namespaces/{NS}/events", labels="")
            reasons = {e["reason"] for e in events}
        assert {"Applied", "Refused"} <= reasons
        state = cluster.client.get(f"{CONFIGMAPS}/site-lab-state")
        assert state is not None and int(state["data"]["parts"]) >= 1


def test_suspend_writes_nothing_and_keeps_status_fresh(cluster: Cluster) -> None:
    with operator():
        cluster.site()
        cluster.wait("Ready", lambda s: condition(s, "Ready").get("status") == "True")
        cluster.client.merge_patch(f"{SITES}/lab", {"spec": {"suspend": True}})
        cluster.wait("Suspended", lambda s: condition(s, "Ready").get("reason") == "Suspended")
        newer = cluster.commit("groups/compute.yaml", "index: 13", "index: 19")
        cluster.wait(
            "pending changes shown",
            lambda s: (
                s["status"].get("lastAttemptedRevision") == newer
                and any(t["pending"] for t in s["status"]["targets"])
            ),
        )
        assert "node019" not in (cluster.out / "dhcpd.hosts.conf").read_text()
        cluster.client.merge_patch(f"{SITES}/lab", {"spec": {"suspend": False}})
        cluster.wait("applied", lambda s: s["status"].get("lastAppliedRevision") == newer)
        assert "node019" in (cluster.out / "dhcpd.hosts.conf").read_text()


@pytest.mark.parametrize("policy", ["orphan", "prune"])
def test_deletion_honours_the_policy(cluster: Cluster, policy: str) -> None:
    with operator():
        cluster.site(deletionPolicy=policy)
        cluster.wait("Ready", lambda s: condition(s, "Ready").get("status") == "True")
        nodes = cluster.out / "http" / "nodes" / "node010.json"
        assert nodes.is_file()
        cluster.client.delete(f"{SITES}/lab")
        deadline = time.monotonic() + 60
        while cluster.get() is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert cluster.get() is None, "the finalizer was never removed"
    assert nodes.is_file() == (policy == "orphan")
    leftovers = cluster.client.list(CONFIGMAPS, labels="reconciler.dev/site=lab")
    assert leftovers == []


def test_a_bad_spec_is_stalled_with_the_reason(cluster: Cluster) -> None:
    with operator():
        cluster.site(targets=[{"name": "dhcp", "type": "dhcp-omapi", "settings": {}}])
        site = cluster.wait("Stalled", lambda s: condition(s, "Stalled").get("status") == "True")
        assert "key_file" in condition(site, "Stalled")["message"]


def ssh_signer(root: Path, name: str) -> tuple[Path, str]:
    key = root / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)],
        check=True, timeout=30,
    )  # fmt: skip
    line = f'{name}@example.invalid namespaces="git" {key.with_suffix(".pub").read_text()}'
    return key, line


def test_unsigned_commits_stall_and_a_rotated_signers_secret_is_used(cluster: Cluster) -> None:
    """Signed commits only; the allowed signers come from a Secret that is then rotated."""
    old_key, old_line = ssh_signer(cluster.root, "old")
    new_key, new_line = ssh_signer(cluster.root, "new")
    secret = f"/api/v1/namespaces/{NS}/secrets"
    cluster.client.create(secret, {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "signers", "namespace": NS,
                     "labels": {"reconciler.dev/secret": "true"}},
        "data": {"allowed": base64.b64encode(old_line.encode()).decode()},
    })  # fmt: skip

    def signed_commit(key: Path, old: str, new: str) -> str:
        path = cluster.repo / "groups" / "compute.yaml"
        path.write_text(path.read_text().replace(old, new))
        git(cluster.repo, "-c", "gpg.format=ssh", "-c", f"user.signingkey={key}",
            "commit", "-S", "-qam", "signed")  # fmt: skip
        return git(cluster.repo, "rev-parse", "HEAD")

    first = signed_commit(old_key, "index: 13", "index: 19")
    verify = {"mode": "ssh", "allowedSigners": {"name": "signers", "key": "allowed"}}
    with operator():
        cluster.site(source={"url": str(cluster.repo), "ref": "main", "verify": verify})
        cluster.wait("signed applied", lambda s: applied(s) == first)
        by_new = signed_commit(new_key, "index: 19", "index: 18")
        site = cluster.wait("Stalled", lambda s: condition(s, "Stalled").get("status") == "True")
        assert condition(site, "Stalled")["reason"] == "UntrustedSignature"
        assert site["status"]["lastAppliedRevision"] == first
        rotated = base64.b64encode((old_line + new_line).encode()).decode()
        cluster.client.merge_patch(f"{secret}/signers", {"data": {"allowed": rotated}})
        cluster.wait("applied after rotation",
                     lambda s: applied(s) == by_new)  # fmt: skip
        latest = cluster.get()
        assert latest is not None and "new@example.invalid" not in str(latest)  # never in status


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_a_signed_push_to_the_webhook_applies_a_commit_without_waiting_the_interval(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.operator import handlers
    from reconciler.operator.webhook import REQUESTED_AT

    secret = tmp_path / "webhook-secret"
    secret.write_text("s3cret-for-pushes\n")
    secret.chmod(0o600)
    monkeypatch.setattr(handlers.Settings, "webhook_secret_file", secret)
    monkeypatch.setattr(handlers.Settings, "webhook_listen", "127.0.0.1:0")
    monkeypatch.setattr(handlers.Settings, "namespace", NS)
    with operator():
        cluster.site(interval=3600)  # only a webhook can make it fetch within the test
        head = git(cluster.repo, "rev-parse", "HEAD")
        cluster.wait("Ready", lambda s: applied(s) == head)
        receiver = handlers.Settings.webhooks
        assert receiver is not None
        url = f"http://127.0.0.1:{receiver.port}"
        newer = cluster.commit("groups/compute.yaml", "index: 13", "index: 19")
        body = b'{"ref": "refs/heads/main"}'

        forged = hmac.new(b"not-the-secret", body, hashlib.sha256).hexdigest()
        assert (
            post(f"{url}/webhook/github", body, {"X-Hub-Signature-256": f"sha256={forged}"}) == 401
        )
        assert post(f"{url}/webhook", body, {}) == 401
        time.sleep(3)  # what a wrongly accepted push would have done by now
        site = cluster.get()
        assert site is not None and applied(site) == head
        assert REQUESTED_AT not in (site["metadata"].get("annotations") or {})

        signature = hmac.new(b"s3cret-for-pushes", body, hashlib.sha256).hexdigest()
        headers = {"X-Hub-Signature-256": f"sha256={signature}", "X-GitHub-Delivery": "d1"}
        assert post(f"{url}/webhook/github", body, headers) == 202
        site = cluster.wait("pushed commit applied", lambda s: applied(s) == newer, timeout=30)
        assert REQUESTED_AT in site["metadata"]["annotations"]
        assert "node019" in (cluster.out / "dhcpd.hosts.conf").read_text()
