"""Assemble and run a watch loop from a runtime config: what ``reconciler watch`` does.

Kept apart from the loop so tests and the benchmark can build a loop the same
way the command does, and so signal handling (SIGTERM/SIGINT: finish the apply
in progress, then exit 0) lives in one place.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from types import FrameType

from reconciler.config import ConfigError, RuntimeConfig
from reconciler.engine import Engine
from reconciler.watch.backoff import Backoff
from reconciler.watch.http import BackgroundServer, watch_routes
from reconciler.watch.loop import WatchLoop
from reconciler.watch.settings import WatchSettings
from reconciler.watch.sources import LocalRepoSource, RemoteSource, RevisionSource
from reconciler.watch.status import StatusStore
from reconciler.watch.wakeup import WakeupWatcher
from reconciler.watch.webhooks import load_webhook_secret

log = logging.getLogger(__name__)


def _remote_credentials(config: RuntimeConfig, settings: WatchSettings) -> dict[str, Path | None]:
    """The [watch] credential files, relative ones resolved against the config file."""
    files = {
        "credentials_file": settings.credentials_file,
        "ssh_identity": settings.ssh_identity,
        "ssh_known_hosts": settings.ssh_known_hosts,
    }
    return {key: None if path is None else config.resolve(path) for key, path in files.items()}


def build_source(config: RuntimeConfig, settings: WatchSettings) -> RevisionSource:
    state_dir = config.resolve(config.state_dir)
    src = config.source
    if settings.remote is not None:
        return RemoteSource(
            settings.remote,
            mirror=state_dir / "watch" / "mirror.git",
            rev=src.rev,
            subdir=src.subdir,
            interval=settings.poll_interval,
            jitter=settings.poll_jitter,
            timeout=settings.fetch_timeout,
            backoff=Backoff(
                initial=settings.backoff_initial,
                cap=min(settings.backoff_max, settings.poll_interval),
                jitter=settings.backoff_jitter,
            ),
            **_remote_credentials(config, settings),
        )
    if src.repo is None:
        raise ConfigError(
            "watch needs a git source: set [source] repo (a local repository) "
            "or [watch] remote (a URL to fetch)"
        )
    return LocalRepoSource(
        config.resolve(src.repo), src.rev, src.subdir, poll_interval=settings.local_poll_interval
    )


def resolved(config: RuntimeConfig, settings: WatchSettings) -> WatchSettings:
    """``settings`` with its relative paths made relative to the config file, as documented."""
    paths = {
        name: config.resolve(value)
        for name in ("allowed_signers", "gnupghome")
        if (value := getattr(settings, name)) is not None
    }
    return settings.model_copy(update=paths)


def build_loop(config: RuntimeConfig, settings: WatchSettings) -> WatchLoop:
    settings = resolved(config, settings)
    state_dir = config.resolve(config.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    return WatchLoop(
        engine=Engine(config),
        settings=settings,
        source=build_source(config, settings),
        store=StatusStore(state_dir),
    )


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--listen {listen!r}: give HOST:PORT, e.g. 127.0.0.1:9180")
    return host, int(port)


def run_watch(config: RuntimeConfig, settings: WatchSettings, *, listen: str | None = None) -> None:
    """Run until SIGTERM or SIGINT; the apply in progress is finished first."""
    loop = build_loop(config, settings)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal received: finishing the current apply", extra={"signal": signum})
        loop.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server: BackgroundServer | None = None
    if listen is not None:
        host, port = parse_listen(listen)
        secret = load_webhook_secret(config)
        routes = watch_routes(
            store=loop.store, metrics=loop.metrics, trigger=loop.trigger.fire, secret=secret
        )
        server = BackgroundServer(routes, host=host, port=port)
        server.start()
        log.info("listening", extra={"host": host, "port": server.port})
    wakeup = WakeupWatcher(config.resolve(config.state_dir), loop.trigger.fire)
    wakeup.start()
    try:
        loop.run()
    finally:
        wakeup.stop()
        if server is not None:
            server.stop()
