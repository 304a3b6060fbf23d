"""The DNS half of a small site as desired state: what the DNS target tests reconcile.

The dns-zonefile tests (files on disk) and the dns-rfc2136 tests (a real
named) check the same promises on the same records, so they build them here:
per host an A record in the forward zone and a PTR in the reverse one, and
CNAMEs for aliases. The zones are the sandbox named's (``cluster.example.``,
``45.23.10.in-addr.arpa.``).
"""

from __future__ import annotations

from reconciler.resources import DesiredState, DnsRecord, DnsZone
from reconciler.sandbox.named import FORWARD_ZONE as FWD
from reconciler.sandbox.named import REVERSE_ZONE as REV

__all__ = ["FWD", "REV", "dns_site"]


def dns_site(
    hosts: dict[str, int],
    *,
    ttl: int = 300,
    aliases: dict[str, str] | None = None,
    with_glue: bool = False,
) -> DesiredState:
    """``hosts``: name -> last octet in 10.23.45.0/24; ``aliases``: alias -> host name;
    ``with_glue``: an A record for the zone's name server ns1 too."""
    records: list[DnsRecord] = []
    for host, octet in hosts.items():
        fqdn = f"{host}.{FWD}"
        records.append(DnsRecord(FWD, fqdn, "A", ttl, (f"10.23.45.{octet}",)))
        records.append(DnsRecord(REV, f"{octet}.{REV}", "PTR", ttl, (fqdn,)))
    if with_glue:
        records.append(DnsRecord(FWD, f"ns1.{FWD}", "A", ttl, ("10.23.45.2",)))
    for alias, host in (aliases or {}).items():
        records.append(DnsRecord(FWD, f"{alias}.{FWD}", "CNAME", ttl, (f"{host}.{FWD}",)))
    return DesiredState(
        dns_zones=(DnsZone(FWD, "forward"), DnsZone(REV, "reverse")),
        dns_records=tuple(records),
    )
