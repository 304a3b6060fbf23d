"""The runtime config: the example loads, and mistakes name the key to fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reconciler.config import ConfigError, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "reconciler.toml"


def test_the_deploy_example_is_a_live_site_with_every_table() -> None:
    config = load_config(EXAMPLE)
    assert config.source.rev == "main"
    assert config.serve.port == 8080
    assert config.watch.drift_interval == 300
    kinds = {name: target.type for name, target in config.targets.items()}
    assert kinds == {
        "dhcpd": "dhcp-conf", "dhcp-hosts": "dhcp-omapi", "dns": "dns-rfc2136",
        "boot": "bootfiles", "images": "node-images",
    }  # fmt: skip
    # dhcp-conf writes the OMAPI key that dhcp-omapi signs with: same name, same file.
    dhcpd, hosts = config.targets["dhcpd"].settings(), config.targets["dhcp-hosts"].settings()
    assert dhcpd["omapi_key_name"] == hosts["key_name"]
    assert dhcpd["omapi_key_file"] == hosts["key_file"]
    # OMAPI and the TSIG-signed updates are reached on loopback, never the node network.
    assert hosts["server"] == config.targets["dns"].settings()["server"] == "127.0.0.1"
    assert config.serve.listen == "10.23.45.2"


def test_the_deploy_example_mentions_every_setting_of_what_it_shows() -> None:
    """Set or commented out: a user reading deploy/reconciler.toml sees every key."""
    from pydantic import BaseModel

    from reconciler.config import RuntimeConfig, TargetConfig
    from reconciler.targets import settings_model

    config = load_config(EXAMPLE)
    tables: dict[str, list[str]] = {}
    table = ""
    for line in EXAMPLE.read_text().splitlines():
        header = re.match(r"^\[([^\]]+)\]", line)
        if header:
            table = header.group(1)
        setting = re.match(r"^#? ?([a-z_]+) = ", line)
        if setting:
            tables.setdefault(table, []).append(setting.group(1))
    sections: dict[str, type[BaseModel]] = {"": RuntimeConfig}
    for name, field in RuntimeConfig.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and name in tables:
            sections[name] = annotation
    for name, target in config.targets.items():
        sections[f"targets.{name}"] = settings_model(target.type)
    missing = []
    for table_name, model in sections.items():
        shown = set(tables.get(table_name, []))
        for key, field in model.model_fields.items():
            kind = field.annotation
            table_like = key == "targets" or (
                isinstance(kind, type) and issubclass(kind, BaseModel)
            )
            if not field.exclude and not table_like and key not in shown:
                missing.append(f"[{table_name or 'top level'}] {key}")
    assert missing == [], (
        "deploy/reconciler.toml does not mention these settings; add each (commented out "
        f"if it is not set) with what it does: {missing}"
    )
    assert set(TargetConfig.model_fields) - {"type"} <= set(EXAMPLE.read_text().split("`"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[source]\npath = "x"\nrepo = "y"\n', "exactly one of 'path'"),
        ("[source]\n", "exactly one of 'path'"),
        ('[source]\npath = "x"\n[serve]\nport = 0\n', "serve.port"),
        ('[source]\npath = "x"\n[serve]\nlisten_on = "a"\n', "serve.listen_on"),
        ('[source]\npath = "x"\nstate_dri = "/tmp"\n', "state_dri"),
        ('[source\npath = "x"\n', "not valid TOML"),
        ('[source]\npath = "x"\n[watch]\ndrift = { dns = "report" }\n', "watch.drift.dns"),
        ('[source]\npath = "x"\n[watch]\ndrift_default = "fix"\n', "watch.drift_default"),
        ('[source]\npath = "x"\nmax_change_fraction = 2\n', "max_change_fraction"),
    ],
)
def test_config_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "r.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as error:
        load_config(path)
    assert str(path) in str(error.value)


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "r.toml"
    path.parent.mkdir()
    path.write_text('state_dir = "state"\n[source]\npath = "inv"\n')
    config = load_config(path)
    assert config.resolve(config.state_dir) == tmp_path / "etc" / "state"


def test_unknown_keys_list_the_valid_ones_and_every_bad_target_is_reported(
    tmp_path: Path,
) -> None:
    path = tmp_path / "r.toml"
    path.write_text(
        'state_dri = "/tmp"\n[source]\npath = "x"\n[watch]\npoll = 3\n'
        '[targets.hosts]\ntype = "dhcp-file"\npth = "x"\n'
        '[targets.boot]\ntype = "bootfiles"\n'
        '[targets.dns]\ntype = "dns-zonfile"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert f"{path}: 6 problems:" in message
    assert "  - state_dri: unknown key; valid keys: source, state_dir, boot, targets," in message
    assert "  - watch.poll: unknown key; valid keys: remote, poll_interval," in message
    assert "  - targets.hosts.path: Field required" in message
    assert "  - targets.hosts.pth: unknown key; valid keys: path\n" in message
    assert "  - targets.boot.directory: Field required" in message
    assert "  - targets.dns: unknown type 'dns-zonfile'; use one of bootfiles," in message


def test_targets_that_fail_to_build_are_all_reported(tmp_path: Path) -> None:
    """A config made in code (not loaded from a file) is checked when the engine builds it."""
    from reconciler.config import RuntimeConfig, SourceConfig, TargetConfig
    from reconciler.engine import Engine

    config = RuntimeConfig(
        source=SourceConfig(path=tmp_path),
        targets={
            "hosts": TargetConfig(type="dhcp-file"),
            "boot": TargetConfig.model_validate({"type": "bootfiles", "dir": "x"}),
        },
    )
    with pytest.raises(ConfigError) as caught:
        Engine(config)
    message = str(caught.value)
    assert "targets.hosts.path: Field required" in message
    assert "targets.boot.dir: unknown key; valid keys: directory" in message
