"""Assemble the aiohttp application of ``reconciler serve`` and run it.

``build_app`` wires the pieces (compiled inventory, boot handlers, the
registration door, the audit log) from a runtime config and its ``[serve]``
settings. Tests build the same app and swap in what the outside world would
give: the peer address and the kernel's neighbour table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from reconciler.config import ConfigError, RuntimeConfig
from reconciler.engine import Engine
from reconciler.inventory.commit import Author, CommitError
from reconciler.keyfiles import check_key_file
from reconciler.server.audit import AuditLog
from reconciler.server.boot import BootHandlers, BootScripts
from reconciler.server.enrol import Enroller
from reconciler.server.limits import ConnectionLimits, run_guarded
from reconciler.server.mirror import AcceptedMirror
from reconciler.server.neighbours import neighbour_mac
from reconciler.server.nodereports import ReportStore
from reconciler.server.nodes import NodeHandlers
from reconciler.server.ops import ops_routes
from reconciler.server.push import RegistrationRemote
from reconciler.server.ratelimit import RateLimiter
from reconciler.server.registration import (
    NeighbourLookup,
    RegistrationHandler,
    RemoteOf,
    request_remote,
)
from reconciler.server.reportfeed import ReportFeed
from reconciler.server.reports import ReportHandler
from reconciler.server.settings import ServeSettings, load_serve_config
from reconciler.server.state import CompiledInventory, NotReady
from reconciler.statelock import StateLock

log = logging.getLogger(__name__)
REGISTRATION_LOCK_WAIT = 10.0  # seconds a registration waits for apply or a watch pass


@dataclass(frozen=True, slots=True)
class Outside:
    """What the service learns from outside the request body; tests replace these."""

    remote_of: RemoteOf = request_remote
    neighbour_mac: NeighbourLookup = neighbour_mac


def push_url_of(config: RuntimeConfig, settings: ServeSettings) -> str | None:
    """Where registrations are pushed: push_url, else the remote the site is applied from."""
    return settings.push_url or settings.mirror_url or config.watch.remote


def _git_files(config: RuntimeConfig, settings: ServeSettings) -> dict[str, Path | None]:
    """The credentials of serve's mirror fetch, relative paths resolved against the config."""
    files = {
        "credentials_file": settings.mirror_credentials_file,
        "ssh_identity": settings.ssh_identity,
        "ssh_known_hosts": settings.ssh_known_hosts,
    }
    return {key: None if path is None else config.resolve(path) for key, path in files.items()}


def _remote(config: RuntimeConfig, settings: ServeSettings) -> RegistrationRemote | None:
    url = push_url_of(config, settings)
    if url is None:
        return None
    credentials = settings.push_credentials_file
    if credentials is not None:
        credentials = config.resolve(credentials)
        # Checked like every key file; a missing one (an optional Secret not created
        # yet) is said in the 503 of each registration, boot scripts are still served.
        check_key_file(credentials, setting="serve.push_credentials_file")
    return RegistrationRemote(
        url,
        work=config.resolve(config.state_dir) / "serve" / "registration.git",
        branch=settings.branch or config.source.rev,
        credentials_file=credentials,
        ssh_identity=config.resolve(settings.ssh_identity) if settings.ssh_identity else None,
        ssh_known_hosts=(
            config.resolve(settings.ssh_known_hosts) if settings.ssh_known_hosts else None
        ),
        timeout=settings.push_timeout,
    )


def _enroller(config: RuntimeConfig, settings: ServeSettings, engine: Engine) -> Enroller | None:
    source = config.source
    remote = _remote(config, settings)
    if source.repo is None and remote is None:
        log.warning("registration disabled: the inventory source is a folder, not git")
        return None
    signing_key = config.resolve(settings.signing_key) if settings.signing_key else None
    if signing_key is not None and not check_key_file(signing_key, setting="serve.signing_key"):
        raise ConfigError(f"serve.signing_key: {signing_key} does not exist")
    if remote is not None:
        log.warning("registrations are pushed", extra={"remote": remote.shown_url})
    try:
        return Enroller(
            repo=remote.work if remote is not None else config.resolve(source.repo or Path()),
            branch=settings.branch or source.rev,
            subdir=source.subdir,
            author=Author(settings.author_name, settings.author_email),
            boot_profiles=engine.templates.profiles,
            signing_key=signing_key,
            remote=remote,
        )
    except CommitError as error:
        log.error("registration disabled", extra={"error": str(error)})
        return None


def build_app(
    config: RuntimeConfig, settings: ServeSettings, *, outside: Outside | None = None
) -> web.Application:
    outside = outside or Outside()
    engine = Engine(config)
    mirror = None
    if settings.mirror_url is not None:
        path = config.resolve(config.state_dir) / "serve" / "mirror.git"
        files = _git_files(config, settings)
        mirror = AcceptedMirror(
            settings.mirror_url,
            path=path,
            credentials_file=files["credentials_file"],
            ssh_identity=files["ssh_identity"],
            ssh_known_hosts=files["ssh_known_hosts"],
        )
    compiled = CompiledInventory(
        engine,
        refresh_seconds=settings.refresh_seconds,
        accepted_file=settings.accepted_file,
        assignments_file=settings.assignments_file,
        mirror=mirror,
    )
    scripts = BootScripts(engine.templates, engine.options.http_url)
    audit_path = settings.audit_log
    if not audit_path.is_absolute():
        audit_path = config.resolve(config.state_dir) / audit_path
    registration = RegistrationHandler(
        enroller=_enroller(config, settings, engine),
        compiled=compiled,
        audit=AuditLog(
            audit_path,
            max_bytes=settings.audit_log_max_bytes,
            backups=settings.audit_log_backups,
        ),
        limiter=RateLimiter(
            per_minute=settings.rate_limit_per_minute, burst=settings.rate_limit_burst
        ),
        global_limiter=RateLimiter(
            per_minute=settings.rate_limit_global_per_minute,
            burst=settings.rate_limit_global_burst,
        ),
        neighbour_mac=outside.neighbour_mac,
        max_body_bytes=settings.max_body_bytes,
        body_timeout=settings.body_timeout,
        allow_get=settings.register_with_get,
        remote_of=outside.remote_of,
        state_lock=StateLock(
            config.resolve(config.state_dir), purpose="registration", timeout=REGISTRATION_LOCK_WAIT
        ),
    )
    reports = ReportStore(config.resolve(config.state_dir))
    compiled.on_new_revision(
        lambda current: reports.keep_only([host.hostname for host in current.state.dhcp_hosts])
    )
    node_reports = ReportHandler(
        compiled=compiled,
        store=reports,
        limiter=RateLimiter(
            per_minute=settings.report_rate_per_minute, burst=settings.report_rate_burst
        ),
        neighbour_mac=outside.neighbour_mac,
        max_body_bytes=settings.max_report_bytes,
        body_timeout=settings.body_timeout,
        remote_of=outside.remote_of,
    )
    nodes = NodeHandlers(compiled, refresh_seconds=settings.refresh_seconds)
    app = web.Application(client_max_size=settings.max_body_bytes)  # reports read their own
    app.add_routes(BootHandlers(compiled, scripts).routes())
    app.add_routes(nodes.routes())
    app.add_routes(node_reports.routes())
    token_file = settings.reports_token_file
    app.add_routes(
        ReportFeed(
            compiled=compiled,
            store=reports,
            token_file=config.resolve(token_file) if token_file is not None else None,
        ).routes()
    )
    app.add_routes(registration.routes())
    secret_file = config.watch.webhook_secret_file
    app.add_routes(
        ops_routes(
            state_dir=config.resolve(config.state_dir),
            webhook_secret_file=config.resolve(secret_file) if secret_file else None,
            reports=reports,
        )
    )

    async def warm_up(_: web.Application) -> None:
        try:
            await compiled.current(force=True)
        except NotReady as error:  # served as 503 until a good revision arrives
            log.error("starting without a compiled inventory", extra={"error": str(error)})

    async def release_long_polls(_: web.Application) -> None:
        nodes.signal.release_all()

    async def stop_signal(_: web.Application) -> None:
        await nodes.signal.close()

    app.on_startup.append(warm_up)
    app.on_shutdown.append(release_long_polls)
    app.on_cleanup.append(stop_signal)
    return app


def serve(config_path: Path) -> None:
    """Run the service until interrupted (``reconciler serve``)."""
    config, settings = load_serve_config(config_path)
    app = build_app(config, settings)
    log.warning(
        "serving", extra={"listen": settings.listen, "port": settings.port, "config": config_path}
    )
    run_guarded(
        app,
        host=settings.listen,
        port=settings.port,
        limits=connection_limits(settings),
        access_log=logging.getLogger("reconciler.server.access"),
    )


def connection_limits(settings: ServeSettings) -> ConnectionLimits:
    return ConnectionLimits(
        max_connections=settings.max_connections,
        max_per_address=settings.max_connections_per_address,
        header_timeout=settings.header_timeout,
        keepalive_timeout=settings.keepalive_timeout,
    )
