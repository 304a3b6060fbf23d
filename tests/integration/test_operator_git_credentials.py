"""A Site whose repository needs credentials: its ``source.secretRef`` Secret reaches git.

The Kubernetes API is the stand-in of test_operator_kmock.py (kube_apiserver.py
says why: no real apiserver can run on these machines); the git hosts are real:
``git http-backend`` behind HTTP Basic authentication on 127.0.0.1
(``reconciler.sandbox.git_http``), so git gets in only with the user and token of
the Secret, and Debian's sshd in a namespace of its own (``reconciler.sandbox.sshd``),
which lets in only the Secret's deploy key and proves a host key that the Secret's
``known_hosts`` must pin, exactly as with a private git host.
"""

from __future__ import annotations

import base64
import logging

import pytest

from reconciler.sandbox.git_http import git_http_host
from reconciler.sandbox.site import git
from reconciler.sandbox.sshd import make_key, ssh_git_host
from tests.integration.test_operator_kmock import NS, Cluster, applied, cluster, condition, operator

__all__ = ["cluster"]  # the fixture, shared with test_operator_kmock.py

USER, TOKEN, WRONG = "site-reader", "gh-t0ken-5150-right", "gh-t0ken-6160-wrong"
SECRETS = f"/api/v1/namespaces/{NS}/secrets"


def git_secret(cluster: Cluster, password: str) -> None:
    secret(cluster, {"username": USER, "password": password})


def secret(cluster: Cluster, data: dict[str, str]) -> None:
    cluster.client.create(SECRETS, {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "git-credentials", "namespace": NS,
                     "labels": {"reconciler.dev/secret": "true"}},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    })  # fmt: skip


def test_a_private_repository_is_fetched_with_the_secret_and_a_wrong_token_stalls(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    head = git(cluster.repo, "rev-parse", "HEAD")
    git_secret(cluster, WRONG)
    with git_http_host(cluster.root, user=USER, password=TOKEN) as host:
        url = host.url(cluster.repo / ".git")
        source = {"url": url, "ref": "main", "secretRef": {"name": "git-credentials"}}
        with operator() as runner:
            cluster.site(source=source)
            site = cluster.wait(
                "not ready, fetch refused",
                lambda s: "Authentication failed" in condition(s, "Ready").get("message", ""),
            )
            assert condition(site, "Ready")["status"] == "False"
            assert condition(site, "Ready")["reason"] == "NoRevision"
            assert applied(site) is None
            assert USER in host.seen_users  # git asked for the Secret's credentials
            assert f"127.0.0.1:{host.port}" in condition(site, "Ready")["message"]

            right = base64.b64encode(TOKEN.encode()).decode()
            cluster.client.merge_patch(f"{SECRETS}/git-credentials", {"data": {"password": right}})
            site = cluster.wait(
                "Ready with the rotated token",
                lambda s: condition(s, "Ready").get("status") == "True" and applied(s) == head,
            )
            newer = cluster.commit("groups/compute.yaml", "index: 13", "index: 19")
            cluster.wait("new commit fetched", lambda s: applied(s) == newer)
            assert "node019" in (cluster.out / "dhcpd.hosts.conf").read_text()
            events = cluster.client.list(f"/api/v1/namespaces/{NS}/events", labels="")
    shown = str(cluster.get()) + str(events) + runner.output + caplog.text
    for secret in (TOKEN, WRONG):
        assert secret not in shown  # nor in status, Events or logs
    folder = cluster.root / "work"
    kept = [p for p in folder.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
    assert all(p.stat().st_mode & 0o077 == 0 for p in kept), kept  # 0600 key files only


def test_a_secret_without_the_keys_stalls_with_what_is_missing(cluster: Cluster) -> None:
    cluster.client.create(SECRETS, {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "git-credentials", "namespace": NS,
                     "labels": {"reconciler.dev/secret": "true"}},
        "data": {"identity": base64.b64encode(b"not a key").decode()},
    })  # fmt: skip
    with operator():
        source = {"url": "ssh://git@127.0.0.1:1/site.git", "secretRef": {"name": "git-credentials"}}
        cluster.site(source=source)
        site = cluster.wait("Stalled", lambda s: condition(s, "Stalled").get("status") == "True")
        assert condition(site, "Stalled")["reason"] == "InvalidSpec"
        assert "no key 'known_hosts'" in condition(site, "Stalled")["message"]


def test_an_ssh_source_is_fetched_with_the_deploy_key_and_a_pinned_host_key(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    head = git(cluster.repo, "rev-parse", "HEAD")
    deploy_key = make_key(cluster.root / "deploy-key", comment="site-deploy-key")
    private = (cluster.root / "deploy-key").read_text()
    key_body = "".join(private.splitlines()[1:-1])  # the key itself, without its armour
    key = private.splitlines()[1].encode()  # one line of it, as it is in a key file
    impostor = make_key(cluster.root / "impostor", comment="impostor-host-key")
    with ssh_git_host(cluster.root / "sshd", authorized_keys=[deploy_key], lifetime=300) as host:
        wrong_pin = f"[127.0.0.1]:{host.port} {impostor}\n"
        secret(cluster, {"identity": private, "known_hosts": wrong_pin})
        source = {"url": host.url(cluster.repo), "ref": "main",
                  "secretRef": {"name": "git-credentials"}}  # fmt: skip
        with operator() as runner:
            cluster.site(source=source)
            site = cluster.wait(
                "not ready: the host key is not the pinned one",
                lambda s: (
                    "Host key verification failed" in condition(s, "Ready").get("message", "")
                ),
            )
            assert condition(site, "Ready")["status"] == "False" and applied(site) is None
            assert f"[127.0.0.1]:{host.port} has changed" in condition(site, "Ready")["message"]
            assert "Accepted publickey" not in host.log()  # no key offered to an impostor

            pin = base64.b64encode(host.known_hosts().encode()).decode()
            cluster.client.merge_patch(f"{SECRETS}/git-credentials", {"data": {"known_hosts": pin}})
            site = cluster.wait(
                "Ready with the right host key",
                lambda s: condition(s, "Ready").get("status") == "True" and applied(s) == head,
            )
            newer = cluster.commit("groups/compute.yaml", "index: 13", "index: 19")
            cluster.wait("new commit fetched over ssh", lambda s: applied(s) == newer)
            assert "node019" in (cluster.out / "dhcpd.hosts.conf").read_text()
            events = cluster.client.list(f"/api/v1/namespaces/{NS}/events", labels="")
            folder = cluster.root / "work"
            kept = [p for p in folder.rglob("*") if p.is_file() and key in p.read_bytes()]
            assert kept and all(p.stat().st_mode & 0o077 == 0 for p in kept), kept  # 0600
        assert "Accepted publickey for root from 127.0.0.1" in host.log()
    shown = str(cluster.get()) + str(events) + runner.output + caplog.text
    assert key_body not in shown and "PRIVATE KEY" not in shown  # status, Events, logs
