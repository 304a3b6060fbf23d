"""deploy/kubernetes/: the CRD is current, every manifest validates against Kubernetes' schemas.

kubernetes-validate checks the standard kinds (strict: an unknown field is an
error) against the Kubernetes 1.30 and newest schemas it ships. Custom
resources (Site, KopfPeering) have no schema there: the sample Site is checked
with the operator's own spec model, which is what the CRD is generated from.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.operator.crd import CRD_FILE, render_crd
from reconciler.operator.spec import SiteSpec

# A dev dependency: scripts/setup.sh installs it (in CI a skip fails the run).
kubernetes_validate = pytest.importorskip("kubernetes_validate")

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "deploy" / "kubernetes"
CUSTOM_KINDS = {"Site", "KopfPeering"}


def documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(FOLDER.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                found.append((path.name, document))
    return found


def test_the_committed_crd_is_generated_from_the_spec_models() -> None:
    assert (ROOT / CRD_FILE).read_text() == render_crd(), (
        "deploy/kubernetes/crd-site.yaml is stale: run `reconciler operator crd`"
    )


@pytest.mark.parametrize("version", ["1.30.0", "1.37.0"])
def test_every_standard_manifest_validates_strictly(version: str) -> None:
    checked = 0
    for _, document in documents():
        if document["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(document, version, strict=True)
        checked += 1
    assert checked >= 10, f"only {checked} manifests validated; are files missing?"


def test_a_broken_manifest_is_caught() -> None:
    """The validator really checks: a misspelt field in a Deployment is an error."""
    deployment = next(d for _, d in documents() if d["kind"] == "Deployment")
    deployment["spec"]["replicaz"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.37.0", strict=True)


def test_the_sample_site_is_a_valid_spec() -> None:
    sites = [d for _, d in documents() if d["kind"] == "Site"]
    assert sites
    for site in sites:
        spec = SiteSpec.model_validate(site["spec"])
        assert spec.targets and spec.deletion_policy in ("orphan", "prune")


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((FOLDER / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    present = {p.name for p in FOLDER.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def test_rbac_grants_no_cluster_wide_write() -> None:
    for _, document in documents():
        if document["kind"] != "ClusterRole":
            continue
        for rule in document["rules"]:
            assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule


def test_crd_check_exits_1_when_stale(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from reconciler.cli import app

    stale = tmp_path / "crd.yaml"
    stale.write_text("old\n")
    result = CliRunner().invoke(app, ["operator", "crd", "--check", "--out", str(stale)])
    assert result.exit_code == 1 and "stale" in result.output
    assert CliRunner().invoke(app, ["operator", "crd", "--out", str(stale)]).exit_code == 0
    assert (
        CliRunner().invoke(app, ["operator", "crd", "--check", "--out", str(stale)]).exit_code == 0
    )


def test_the_webhook_service_reaches_the_operator_and_its_secret_is_mounted() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]): d for _, d in documents()}
    service = kinds[("Service", "reconciler-operator-webhook")]
    operator = kinds[("StatefulSet", "reconciler-operator")]
    pod = operator["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    container = pod["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert service["spec"]["ports"][0]["targetPort"] in ports
    args = container["args"]
    secret_file = args[args.index("--webhook-secret-file") + 1]
    listen = args[args.index("--webhook-listen") + 1]
    assert listen.endswith(f":{ports['webhook']}")
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "webhook")
    assert secret_file == f"{mounts['webhook']}/secret"
    assert volume["secret"]["secretName"] == "reconciler-webhook"


def test_serve_follows_the_accepted_configmap_and_fetches_the_sites_repository(
    tmp_path: Path,
) -> None:
    from reconciler.config import load_config
    from reconciler.server.app import push_url_of

    kinds = {(d["kind"], d["metadata"]["name"]): d for _, d in documents()}
    toml = tmp_path / "reconciler.toml"
    toml.write_text(kinds[("ConfigMap", "reconciler-serve")]["data"]["reconciler.toml"])
    settings = load_config(toml).serve
    site = kinds[("Site", "example")]
    assert settings.mirror_url == site["spec"]["source"]["url"]
    pod = kinds[("Deployment", "reconciler-serve")]["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert settings.accepted_file == Path(mounts["accepted"]) / "accepted.json"
    # The rollout waves' assignments: the operator publishes them in the same ConfigMap.
    assert settings.assignments_file == Path(mounts["accepted"]) / "assignments.json.gz"
    assert volumes["accepted"]["configMap"]["name"] == "site-example-accepted"
    # The node reports, pulled by the operator: serve's token is the Site's Secret key.
    reports = site["spec"]["reports"]
    assert settings.reports_token_file == Path(mounts["serve-reports"]) / "token"
    assert volumes["serve-reports"]["secret"]["secretName"] == reports["tokenSecretRef"]["name"]
    assert reports["tokenSecretRef"]["key"] == "token"
    assert reports["url"] == f"http://{settings.listen}:{settings.port}"
    # Registrations are pushed to the Site's repository with the mounted git-credentials.
    assert push_url_of(load_config(toml), settings) == site["spec"]["source"]["url"]
    secret = volumes["git-credentials"]["secret"]
    assert secret["secretName"] == "git-credentials" and "items" not in secret  # every key
    assert settings.push_credentials_file == Path(mounts["git-credentials"]) / "push-token"
    # serve's mirror fetches the Site's private repository with the same Secret.
    assert settings.mirror_credentials_file == settings.push_credentials_file


def test_the_sample_sites_git_secret_holds_what_the_operator_and_serve_read(
    tmp_path: Path,
) -> None:
    """username/password for the https source (the operator), push-token for serve."""
    from reconciler.config import load_config
    from reconciler.operator.site import runtime_config

    kinds = {(d["kind"], d["metadata"]["name"]): d for _, d in documents()}
    spec = SiteSpec.model_validate(kinds[("Site", "example")]["spec"])
    assert spec.source.secret_ref is not None and spec.source.url.startswith("https://")
    secret = kinds[("Secret", spec.source.secret_ref.name)]
    assert secret["metadata"]["labels"]["reconciler.dev/secret"] == "true"  # or it is not read
    toml = tmp_path / "serve.toml"
    toml.write_text(kinds[("ConfigMap", "reconciler-serve")]["data"]["reconciler.toml"])
    serve = load_config(toml).serve
    assert serve.push_credentials_file is not None and serve.mirror_credentials_file is not None
    read_by_serve = {serve.push_credentials_file.name, serve.mirror_credentials_file.name}
    assert {"username", "password", *read_by_serve} <= set(secret["stringData"])
    data = {k: base64.b64encode(v.encode()).decode() for k, v in secret["stringData"].items()}
    namespace = secret["metadata"]["namespace"]
    keys = {(namespace, n): {"omapi-key": "a2V5", "tsig-key": "a2V5"} for n in ["example-keys"]}
    keys[(namespace, secret["metadata"]["name"])] = data
    reports = kinds[("Secret", "serve-reports")]
    assert reports["metadata"]["labels"]["reconciler.dev/secret"] == "true"
    keys[(namespace, "serve-reports")] = {"token": base64.b64encode(b"t0ken").decode()}
    config = runtime_config(spec, namespace=namespace, work_dir=tmp_path, secrets=keys)
    assert config.watch.credentials_file is not None
    # The operator pulls the node reports from serve with the token, a 0600 file.
    assert config.watch.reports_url == "http://10.23.45.2:8080"
    assert config.watch.reports_token_file is not None
    assert config.watch.reports_token_file.read_bytes() == b"t0ken"
    assert config.watch.reports_token_file.stat().st_mode & 0o777 == 0o600
    token = config.watch.credentials_file.read_text()
    assert token == f"{secret['stringData']['username']}:{secret['stringData']['password']}"
    assert config.watch.credentials_file.stat().st_mode & 0o777 == 0o600
