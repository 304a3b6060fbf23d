"""Load, compile and plan as the runtime config says: what ``plan`` and ``apply`` share.

Kept out of ``reconciler/cli.py``, which only parses options, renders and turns
errors into exit codes: here the order of the steps a one-off pass takes (plan
cache, load, rollouts, compile, the file targets' pre-read, the targets' reads)
and what each needs from the one before. ``reconciler media`` loads its engine
the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.cli_errors import stderr_console
from reconciler.quick_exit import keep_until_exit

if TYPE_CHECKING:
    from reconciler.engine import Engine
    from reconciler.inventory.sources import InventorySource
    from reconciler.plan import Plan


def load_engine(config_path: Path, rev: str | None) -> tuple[Engine, InventorySource]:
    from reconciler.config import ConfigError, load_config
    from reconciler.engine import Engine, source_from_config

    config = load_config(config_path)
    if rev is not None:
        if config.source.repo is None:
            raise ConfigError("--rev needs a git source: set [source] repo in the config")
        config = config.model_copy(update={"source": config.source.model_copy(update={"rev": rev})})
    return Engine(config, keep_caches=False), source_from_config(config)  # one pass


def progress() -> Callable[[str], None]:
    def report(step: str) -> None:
        if stderr_console().is_terminal:
            stderr_console().print(f"[dim]{step}...[/]", highlight=False)

    return report


def plan_from_source(
    engine: Engine, source: InventorySource, *, cached: bool = False, parallel: bool = False
) -> tuple[Plan, Callable[[], None]]:
    """Load, compile and plan as the runtime config says: what plan and apply share.

    Nodes of a group whose image changes get the version its rollout assigns them
    now (the state dir's rollout state, as the watch loop keeps it); the second
    value records that decision, for ``apply`` to call once it applied the plan.
    ``cached`` (``plan`` only): reuse the last no-op plan while nothing it depends
    on changed, and remember a new one (``reconciler/plan_cache.py``). ``parallel``:
    targets are read in worker processes (``Engine.plan``).
    """
    from reconciler.gc_pause import collector_paused
    from reconciler.plan_cache import PlanCache
    from reconciler.rollout.preview import with_node_moves
    from reconciler.rollout.runner import run_rollouts, save_pass
    from reconciler.rollout.store import RolloutStore
    from reconciler.targets.file_preread import PreReading

    # PreReading: the file targets' files looked at on the idle core during load and compile.
    with (
        collector_paused(),  # see reconciler/gc_pause.py: 5 s of CPU at 100k hosts
        PreReading(engine.targets if parallel and not cached else ()) as pre_read,
    ):
        cache = PlanCache(engine, source) if cached else None
        if cache is not None:
            source = cache.source  # its files read once, for the fingerprint and the load
            reused = cache.before_load()
            if reused is not None:
                return reused, lambda: None
        inventory = engine.load(source)
        store = RolloutStore(engine.config.resolve(engine.config.state_dir))
        rollouts = run_rollouts(inventory, store, persist=False)
        reused = cache.after_rollouts(rollouts) if cache is not None else None
        if reused is not None:
            return reused, lambda: save_pass(store, rollouts)
        state = engine.compile(inventory, assignments=rollouts.assignments)
        keep_until_exit(inventory, state)  # see reconciler/quick_exit.py
        pre_read.hand_over()
        the_plan = engine.plan(
            state,
            revision=inventory.revision,
            progress=progress(),
            recorder=cache,
            parallel=parallel,
        )
        moved = with_node_moves(the_plan, inventory)
        if cache is not None:
            cache.record(moved, rollouts)
    return moved, lambda: save_pass(store, rollouts)


def plan_from_config(config_path: Path, rev: str | None, *, cached: bool) -> tuple[Engine, Plan]:
    engine, source = load_engine(config_path, rev)
    return engine, plan_from_source(engine, source, cached=cached, parallel=True)[0]
