"""A Site whose repository needs credentials: its ``source.secretRef`` Secret reaches git.

The Kubernetes API is the stand-in of test_operator_kmock.py (kube_apiserver.py
says why); the git host is real: ``git http-backend`` behind HTTP Basic
authentication on 127.0.0.1 (``reconciler.sandbox.git_http``), so git gets in
only with the user and token of the Secret, exactly as with a private git host.
"""

from __future__ import annotations

import base64
import logging

import pytest
from test_operator_kmock import NS, Cluster, applied, cluster, condition, operator

from reconciler.sandbox.git_http import git_http_host
from reconciler.sandbox.site import git

__all__ = ["cluster"]  # the fixture, shared with test_operator_kmock.py

USER, TOKEN, WRONG = "site-reader", "gh-t0ken-5150-right", "gh-t0ken-6160-wrong"
SECRETS = f"/api/v1/namespaces/{NS}/secrets"


def git_secret(cluster: Cluster, password: str) -> None:
    data = {"username": USER, "password": password}
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
