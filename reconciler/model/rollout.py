"""A group's ``rollout:`` policy: how an image change reaches its nodes.

Changing a group's ``image:`` in git must not swap a whole rack at once. The
policy says how many nodes go per wave, how many may be down at a time, what a
node must report to count as healthy, and what happens when a wave fails. The
rollout controller (``reconciler.rollout``) reads it; this module only checks
its shape, so the JSON Schema for editors comes from here.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

_AMOUNT = re.compile(r"^(\d+)(%?)\Z")
_DURATION = re.compile(r"^(\d+)(s|m|h)?\Z")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, None: 1}


def _check_amount(value: object) -> str:
    """``3`` or ``"3"`` (nodes) or ``"25%"`` (of the group); kept as text, resolved per group."""
    text = str(value).strip() if isinstance(value, (int, str)) else ""
    match = _AMOUNT.match(text)
    if match is None or isinstance(value, bool):
        raise ValueError(
            f"{value!r} is not a node count: write a whole number (3) or a percentage ('25%')"
        )
    number, percent = int(match.group(1)), bool(match.group(2))
    if percent and not 0 < number <= 100:
        raise ValueError(f"{value!r}: a percentage must be between 1% and 100%")
    if not percent and number < 1:
        raise ValueError(f"{value!r}: a count must be at least 1")
    return text


def parse_duration(value: object) -> int:
    """``600``, ``"90s"``, ``"10m"``, ``"1h"`` -> seconds."""
    text = str(value).strip() if isinstance(value, (int, str)) else ""
    match = _DURATION.match(text)
    if match is None or isinstance(value, bool) or int(match.group(1)) < 1:
        raise ValueError(
            f"{value!r} is not a duration: write seconds (600) or a number with s, m or h ('10m')"
        )
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


def resolve_amount(amount: str, total: int) -> int:
    """How many of ``total`` nodes an amount names: percentages round up, never above total."""
    if amount.endswith("%"):
        return min(total, math.ceil(total * int(amount[:-1]) / 100))
    return min(total, int(amount))


NodeAmount = Annotated[
    str,
    BeforeValidator(_check_amount),
    Field(json_schema_extra={"pattern": r"^\d+%?$"}),
]
Duration = Annotated[int, BeforeValidator(parse_duration)]


def _check_waves(waves: list[str]) -> list[str]:
    if waves[-1] not in ("100%",):
        raise ValueError(
            "the last wave must be '100%' so that every node gets the new image; "
            f"add '100%' after {waves[-1]!r}"
        )
    return waves


class RolloutHealth(BaseModel):
    """What a node must report after its swap to count as healthy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agent: bool = Field(
        default=True,
        strict=True,
        description="the node agent's health.d checks must have passed",
    )
    http: str | None = Field(
        default=None,
        pattern=r"^:[0-9]{1,5}/[A-Za-z0-9._~/-]*$",
        description='a port and path on the node that must answer 2xx, e.g. ":80/healthz"',
    )


class RolloutPolicy(BaseModel):
    """``rollout:`` in a group file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    waves: Annotated[list[NodeAmount], AfterValidator(_check_waves)] = Field(
        default_factory=lambda: ["1", "10%", "50%", "100%"],
        min_length=1,
        description="nodes per wave, cumulative, counted (3) or in percent ('10%'); ends in 100%",
    )
    max_unavailable: NodeAmount = Field(
        default="10%", description="nodes that may be swapping or down at once (count or percent)"
    )
    timeout: Duration = Field(
        default=600,
        description="how long a wave may take ('10m'); a node not healthy by then failed",
    )
    on_failure: Literal["pause", "rollback"] = Field(
        default="pause",
        description="pause: open no more waves; rollback: also return updated nodes to the old one",
    )
    method: Literal["live", "reboot"] = Field(
        default="live",
        description="live: switch root, kexec or reboot as needed (the agent); reboot: always",
    )
    paused: bool = Field(
        default=False, strict=True, description="true: open no new wave (a hold from git)"
    )
    health: RolloutHealth = Field(default_factory=RolloutHealth)
