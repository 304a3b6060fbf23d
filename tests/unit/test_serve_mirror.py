"""serve with a mirror of its own: the accepted commit, fetched by id, never the branch head.

As beside the Kubernetes operator: accepted.json comes from a mounted
ConfigMap and names the operator's git folder, which this serve cannot read;
``[serve] mirror_url`` makes serve fetch the repository into its own mirror
and read exactly the accepted commit from it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from reconciler.accepted import AcceptedRevision
from reconciler.config import BootConfig, RuntimeConfig, SourceConfig
from reconciler.server.app import build_app
from reconciler.server.settings import ServeSettings
from tests.unit.serve_site import HTTP_URL, ServeClient, git, make_repo, with_client

NODE010 = "52:54:00:12:34:0a"
NODE012 = "52:54:00:12:34:0c"  # only in the newer commit
OPERATOR_MIRROR = "/var/lib/reconciler-operator/sites/lab/state/watch/mirror.git"


def record(path: Path, revision: str) -> None:
    """accepted.json as the operator writes it (into the ConfigMap serve mounts)."""
    accepted = AcceptedRevision(
        revision=revision, accepted_by="watch", accepted_at=time.time(), repo=OPERATOR_MIRROR
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(accepted.to_dict()))


def boot(app_root: Path, origin: Path, accepted: Path, macs: list[str]) -> list[tuple[int, str]]:
    config = RuntimeConfig(
        source=SourceConfig(repo=app_root / "state" / "serve" / "mirror.git", rev="main"),
        state_dir=app_root / "state",
        boot=BootConfig(http_url=HTTP_URL, tftp_server="10.23.45.2"),
        base_dir=app_root,
    )
    settings = ServeSettings(
        audit_log=app_root / "audit.jsonl",
        mirror_url=str(origin),
        accepted_file=accepted,
        refresh_seconds=0,
    )

    async def scenario(client: ServeClient) -> list[tuple[int, str]]:
        answers = []
        for mac in macs:
            response = await client.get(f"/boot/{mac}")
            answers.append((response.status, await response.text()))
        return answers

    return with_client(build_app(config, settings), scenario)


def test_serve_fetches_the_accepted_commit_into_its_own_mirror_and_not_the_head(
    tmp_path: Path,
) -> None:
    origin = make_repo(tmp_path / "origin")
    accepted_commit = git(origin, "rev-parse", "HEAD").strip()
    compute = origin / "groups" / "compute.yaml"
    compute.write_text(compute.read_text() + '  - index: 12\n    mac: "52:54:00:12:34:0c"\n')
    git(origin, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qam", "12")
    head = git(origin, "rev-parse", "HEAD").strip()
    accepted = tmp_path / "configmap" / "accepted.json"
    record(accepted, accepted_commit)

    answers = boot(tmp_path / "serve", origin, accepted, [NODE010, NODE012])
    assert answers[0][0] == 200 and "node010" in answers[0][1]
    # The branch head has node012; the accepted commit has not: its MAC is unknown.
    assert answers[1][0] == 200 and "node012" not in answers[1][1]
    assert "register" in answers[1][1]
    mirror = tmp_path / "serve" / "state" / "serve" / "mirror.git"
    assert git(mirror, "cat-file", "-t", head).strip() == "commit"  # fetched, yet not served
    assert not Path(OPERATOR_MIRROR).exists()

    record(accepted, head)  # the operator accepted the newer commit
    [(twelve, script)] = boot(tmp_path / "serve", origin, accepted, [NODE012])
    assert twelve == 200 and "node012" in script


def test_a_record_naming_a_branch_or_an_unknown_commit_is_not_served(tmp_path: Path) -> None:
    origin = make_repo(tmp_path / "origin")
    accepted = tmp_path / "configmap" / "accepted.json"
    record(accepted, "main")
    [(status, text)] = boot(tmp_path / "serve", origin, accepted, [NODE010])
    assert status == 503 and "'main' is not a git commit id" in text
    record(accepted, "0" * 40)
    [(status, text)] = boot(tmp_path / "serve", origin, accepted, [NODE010])
    assert status == 503 and "is not in" in text and "mirror_url" in text
