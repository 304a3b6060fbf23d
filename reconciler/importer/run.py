"""One import: read every input given, infer the site, and write it (or nothing).

The CLI builds an ``ImportRequest`` from its options; ``run_import`` returns
the report whether or not it wrote, so the command can print conflicts either
way. With ``strict`` any conflict stops the import before writing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.importer.csvfile import read_csv
from reconciler.importer.dhcpd_conf import read_dhcpd_conf
from reconciler.importer.grouping import Grouper
from reconciler.importer.images import infer_images
from reconciler.importer.infer import Inference, Inferrer, choose_domain
from reconciler.importer.leases import read_leases
from reconciler.importer.pxelinux import read_pxelinux
from reconciler.importer.records import ImportFailure, Sources, Where
from reconciler.importer.warewulf import read_warewulf
from reconciler.importer.writer import check_files, render_files, write_folder
from reconciler.importer.zones import read_axfr, read_zone_file
from reconciler.targets.tsig_key import TsigKeyError, load_key_file


@dataclass(frozen=True, slots=True)
class ImportRequest:
    out: Path
    dhcpd_conf: tuple[Path, ...] = ()
    leases: Path | None = None
    zones: tuple[str, ...] = ()
    axfr: tuple[str, ...] = ()
    tsig_key: Path | None = None
    pxelinux: Path | None = None
    warewulf: Path | None = None
    csv: Path | None = None
    domain: str | None = None
    tftp_server: str | None = None
    strict: bool = False
    timeout: float = 10.0


@dataclass(slots=True)
class ImportReport:
    result: Inference
    files: dict[str, str] = field(default_factory=dict)
    written: bool = False

    @property
    def host_count(self) -> int:
        return sum(len(g.members) for g in self.result.groups)


def read_sources(request: ImportRequest) -> Sources:
    sources = Sources()
    for path in request.dhcpd_conf:
        read_dhcpd_conf(path, sources)
    if request.leases is not None:
        read_leases(request.leases, sources)
    for argument in request.zones:
        read_zone_file(argument, sources)
    if request.axfr:
        key = None
        if request.tsig_key is not None:
            try:
                key = load_key_file(request.tsig_key)
            except TsigKeyError as error:
                raise ImportFailure(Where(str(request.tsig_key)), str(error)) from None
        for argument in request.axfr:
            read_axfr(argument, sources, key=key, timeout=request.timeout)
    if request.pxelinux is not None:
        read_pxelinux(request.pxelinux, sources)
    if request.warewulf is not None:
        read_warewulf(request.warewulf, sources)
    if request.csv is not None:
        read_csv(request.csv, sources)
    return sources


def _inputs(request: ImportRequest) -> list[str]:
    given: list[str] = [f"dhcpd.conf {p}" for p in request.dhcpd_conf]
    given += [f"leases {request.leases}"] if request.leases else []
    given += [f"zone {z}" for z in request.zones] + [f"AXFR {a}" for a in request.axfr]
    given += [f"pxelinux {request.pxelinux}"] if request.pxelinux else []
    given += [f"Warewulf {request.warewulf}"] if request.warewulf else []
    given += [f"CSV {request.csv}"] if request.csv else []
    return given


def infer_site(sources: Sources, *, domain: str | None) -> Inference:
    chosen = choose_domain(sources, domain)
    if chosen is None:
        raise ImportFailure(
            Where("(inputs)"),
            "expected a DNS domain: no zone and no 'option domain-name' gives one; pass --domain",
        )
    inferrer = Inferrer(sources, chosen)
    machines = inferrer.machines()
    inferrer.result.machines = machines
    Grouper(inferrer).run(inferrer.subnets(machines))
    for group in inferrer.result.groups:
        # Legacy host entries carry no per-host iPXE script: keep it that way.
        if any(m.machine.in_dhcp for m in group.members):
            group.dhcp_filename = "subnet"
        # A filename all members have (a legacy ``group { filename ...; }``) is said once.
        filenames = {m.machine.filename for m in group.members}
        servers = {m.machine.next_server for m in group.members}
        shared = len(group.members) > 1
        group.filename = filenames.pop() if shared and len(filenames) == 1 else None
        group.next_server = servers.pop() if shared and len(servers) == 1 else None
    names = {f"{m.name}.{chosen}" for m in machines}
    ttls = Counter(r.ttl for r in sources.forward if r.name in names)
    if ttls:
        inferrer.result.ttl = ttls.most_common(1)[0][0]
        if len(ttls) > 1:
            inferrer.result.warnings.append(
                f"host A records have TTLs {sorted(ttls)}; the site's ttl is the most common, "
                f"{inferrer.result.ttl}"
            )
    return inferrer.result


def run_import(
    request: ImportRequest, *, progress: Callable[[str], None] | None = None
) -> ImportReport:
    """Read, infer, render and check; write unless a conflict is fatal. Raises ImportFailure.

    ``progress`` is told each step as it starts (the CLI shows it on a terminal).
    """
    step = progress or (lambda _: None)
    if not (request.dhcpd_conf or request.leases or request.warewulf or request.csv):
        raise ImportFailure(
            Where("(inputs)"),
            "expected at least one source of machines: --dhcpd-conf, --leases, --warewulf or --csv",
        )
    step("reading the sources")
    sources = read_sources(request)
    step(f"grouping {len(sources.hosts)} host records")
    result = infer_site(sources, domain=request.domain)
    servers = Counter(
        [h.next_server for h in sources.hosts if h.next_server] or sources.next_servers
    )
    tftp_server = request.tftp_server or (servers.most_common(1)[0][0] if servers else "127.0.0.1")
    images = infer_images(sources, result, tftp_server=tftp_server)
    report = ImportReport(result, render_files(result, images, inputs=_inputs(request)))
    if not report.files.keys() - {"site.yaml"}:
        raise ImportFailure(Where("(inputs)"), "no machine could be imported; see the conflicts")
    step(f"checking {len(report.files)} inventory files")
    check_files(report.files)
    if request.strict and result.conflicts:
        return report
    write_folder(request.out, report.files)
    report.written = True
    return report


def render_report(report: ImportReport) -> str:
    result = report.result
    lines = [
        f"imported {report.host_count} hosts in {len(result.groups)} groups "
        f"(domain {result.domain}, ttl {result.ttl})",
    ]
    for group in result.groups:
        own = sum(1 for m in group.members if m.own_name or m.own_address)
        lines.append(
            f"  {group.name}: {len(group.members)} hosts, {group.subnet.network}, "
            f"{group.hostname!r}" + (f", {own} with their own name or address" if own else "")
        )
    if result.conflicts:
        lines.append(f"{len(result.conflicts)} conflicts (nothing was resolved by guessing):")
        lines += [f"  {c}" for c in result.conflicts]
    if result.warnings:
        lines.append(f"{len(result.warnings)} warnings:")
        lines += [f"  {w}" for w in result.warnings]
    return "\n".join(lines)
