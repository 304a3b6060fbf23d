"""Backends, found by the ``type`` a runtime config gives each target.

Modules are imported only when a config uses them, so planning against file
targets in CI never imports the OMAPI or DNS client libraries.
"""

from __future__ import annotations

import importlib
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from reconciler.config import ConfigError, RuntimeConfig, TargetConfig, describe_errors
from reconciler.targets.base import Target

# type name -> module that defines ``build(name, settings, config) -> Target``
TARGET_TYPES: dict[str, str] = {
    "dhcp-file": "reconciler.targets.dhcp_file",
    "dhcp-conf": "reconciler.targets.dhcp_conf",
    "dhcp-omapi": "reconciler.targets.dhcp_omapi",
    "kea-conf": "reconciler.targets.kea_conf",
    "kea-hosts": "reconciler.targets.kea_hosts",
    "dns-zonefile": "reconciler.targets.dns_zonefile",
    "dns-rfc2136": "reconciler.targets.dns_rfc2136",
    "bootfiles": "reconciler.targets.bootfiles",
    "node-images": "reconciler.targets.node_images",
}

SettingsT = TypeVar("SettingsT", bound=BaseModel)


def build_target(name: str, target_config: TargetConfig, config: RuntimeConfig) -> Target:
    """Instantiate the backend a config section names, or say what is wrong with it."""
    module_name = TARGET_TYPES.get(target_config.type)
    if module_name is None:
        known = ", ".join(sorted(TARGET_TYPES))
        raise ConfigError(
            f"targets.{name}: unknown type {target_config.type!r}; use one of {known}"
        )
    module = importlib.import_module(module_name)
    target: Target = module.build(name, target_config.settings(), config)
    return target


def parse_settings(name: str, model: type[SettingsT], settings: dict[str, Any]) -> SettingsT:
    """Validate one target's settings with its pydantic model; errors name the section."""
    try:
        return model.model_validate(settings)
    except ValidationError as error:
        raise ConfigError(describe_errors(error, prefix=f"targets.{name}.")) from None
