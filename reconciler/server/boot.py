"""Boot over HTTP: iPXE scripts per MAC and the compiled boot files.

dhcpd hands every iPXE client ``<http_url>/boot.ipxe``; that script chains to
``/boot/<mac>``, which answers with the host's own script, compiled from the
same revision as the TFTP files, or, for a MAC the inventory does not know,
the registration script. ``/ipxe/<file>`` and ``/pxelinux.cfg/<file>`` serve
the compiled boot files by the names the bootfiles target writes them under.
Node image assignments (``/nodes/<host>.json``) are in ``nodes``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from reconciler.boot_templates import BootTemplates
from reconciler.compile import ipxe_path
from reconciler.model.types import normalize_mac
from reconciler.server.state import Compiled, CompiledInventory, NotReady

TEXT = "text/plain"
BOOT_SCRIPT = "boot.ipxe.j2"
REGISTRATION_PROFILE = "registration"


class BootScripts:
    """The scripts that are not per host: the entry script and the registration script."""

    def __init__(self, templates: BootTemplates, http_url: str) -> None:
        self.context: dict[str, Any] = {"http_url": http_url.rstrip("/")}
        self.entry = templates.environment.get_template(BOOT_SCRIPT).render(self.context)
        self.registration_ipxe = templates.render(REGISTRATION_PROFILE, "ipxe", self.context)
        self.registration_pxelinux = templates.render(
            REGISTRATION_PROFILE, "pxelinux", self.context
        )


class BootHandlers:
    """aiohttp handlers answering from the compiled inventory."""

    def __init__(self, compiled: CompiledInventory, scripts: BootScripts) -> None:
        self.compiled = compiled
        self.scripts = scripts

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/healthz", self.healthz),
            web.get("/boot.ipxe", self.entry),
            web.get("/boot/{mac}", self.boot),
            web.get("/ipxe/{name}", self.boot_file),
            web.get("/pxelinux.cfg/{name}", self.boot_file),
        ]

    async def healthz(self, request: web.Request) -> web.Response:
        try:
            current = await self.compiled.current()
        except NotReady as error:
            return web.json_response({"status": "not ready", "error": str(error)}, status=503)
        return web.json_response(
            {
                "status": "ok",
                "revision": current.revision,
                "hosts": len(current.state.dhcp_hosts),
                "last_error": self.compiled.last_error,
            }
        )

    async def entry(self, request: web.Request) -> web.Response:
        return web.Response(text=self.scripts.entry, content_type=TEXT)

    async def boot(self, request: web.Request) -> web.Response:
        try:
            mac = normalize_mac(request.match_info["mac"])
        except ValueError as error:
            raise web.HTTPBadRequest(text=f"{error}\n") from None
        current = await self._current()
        if mac not in current.state.hosts_by_mac:
            return web.Response(text=self.scripts.registration_ipxe, content_type=TEXT)
        return web.Response(text=current.files[ipxe_path(mac)], content_type=TEXT)

    async def boot_file(self, request: web.Request) -> web.Response:
        folder = request.path.strip("/").split("/", 1)[0]
        current = await self._current()
        content = current.files.get(f"{folder}/{request.match_info['name']}")
        if content is None:
            raise web.HTTPNotFound(text=f"no boot file {request.path}\n")
        return web.Response(text=content, content_type=TEXT)

    async def _current(self) -> Compiled:
        try:
            return await self.compiled.current()
        except NotReady as error:
            raise web.HTTPServiceUnavailable(text=f"{error}\n") from None
