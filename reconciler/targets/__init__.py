"""Backends, found by the ``type`` a runtime config gives each target.

Modules are imported only when a config uses them, so planning against file
targets in CI never imports the OMAPI or DNS client libraries.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from reconciler.config import (
    ConfigError,
    RuntimeConfig,
    TargetConfig,
    describe_errors,
    error_messages,
)
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


def settings_model(type_name: str) -> type[BaseModel]:
    """The pydantic model of a target type's settings: the module's ``SETTINGS_MODEL``,
    or else the one ``*Settings`` model it defines."""
    module_name = TARGET_TYPES[type_name]
    module = importlib.import_module(module_name)
    model = getattr(module, "SETTINGS_MODEL", None)
    if model is not None:
        return model  # type: ignore[no-any-return]
    found = [
        value
        for name, value in vars(module).items()
        if name.endswith("Settings")
        and inspect.isclass(value)
        and issubclass(value, BaseModel)
        and value.__module__ == module_name
    ]
    if len(found) != 1:
        raise ConfigError(
            f"{module_name}: cannot tell which model holds the settings of target type "
            f"{type_name!r} (found {[m.__name__ for m in found]}); "
            "set SETTINGS_MODEL = <the model> in that module"
        )
    return found[0]


def target_problems(sections: Mapping[str, Any]) -> list[str]:
    """What is wrong with each ``[targets.NAME]`` table, all of them at once."""
    problems = []
    for name, section in sections.items():
        if not isinstance(section, Mapping):
            problems.append(f"targets.{name}: must be a table with at least a type")
            continue
        type_name = section.get("type")
        if type_name not in TARGET_TYPES:
            known = ", ".join(sorted(TARGET_TYPES))
            what = f"unknown type {type_name!r}" if type_name is not None else "no type"
            problems.append(f"targets.{name}: {what}; use one of {known}")
            continue
        model = settings_model(type_name)
        settings = {k: v for k, v in section.items() if k not in TargetConfig.model_fields}
        try:
            model.model_validate(settings)
        except ValidationError as error:
            problems += error_messages(error, prefix=f"targets.{name}.", model=model)
    return problems


def parse_settings(name: str, model: type[SettingsT], settings: dict[str, Any]) -> SettingsT:
    """Validate one target's settings with its pydantic model; errors name the section."""
    try:
        return model.model_validate(settings)
    except ValidationError as error:
        raise ConfigError(describe_errors(error, prefix=f"targets.{name}.", model=model)) from None
