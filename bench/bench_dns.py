"""Benchmark of the dns-rfc2136 target against a real named on loopback (run by hand).

Why: the design promises that batching many RRsets into one UPDATE message is
what makes a 10,000-host site fast, and that a one-host change costs one
message per zone it touches. This prints the figures that back (or refute)
that: the initial load of N hosts (A and PTR), a no-op pass (AXFR of every
RRset, zero messages; and the same pass when the zones' SOA serials did not move,
which transfers nothing), a drift pass after a one-record hand edit (IXFR
against the old full AXFR), a one-host change, and batched against one message per
RRset on the same workload in the same run.

    .venv/bin/python bench/bench_dns.py [--hosts 10000] [--compare 2000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconciler.config import RuntimeConfig, SourceConfig
from reconciler.plan import TargetPlan, build_target_plan
from reconciler.resources import DesiredState, DnsRecord, DnsZone
from reconciler.targets.base import ApplyResult
from reconciler.targets.dns_rfc2136 import Rfc2136Target, build
from tests.integration.named import running_named

FWD = "cluster.example."
REV = "23.10.in-addr.arpa."  # 10.23.0.0/16: room for 10,000 hosts and more
BATCH_ZONE = "batched.example."
SINGLE_ZONE = "single.example."


def site_records(hosts: int, *, zone: str = FWD, with_ptr: bool = True) -> list[DnsRecord]:
    records: list[DnsRecord] = []
    for index in range(hosts):
        third, fourth = divmod(index, 250)
        fqdn = f"node{index:05d}.{zone}"
        records.append(DnsRecord(zone, fqdn, "A", 300, (f"10.23.{third}.{fourth + 1}",)))
        if with_ptr:
            records.append(DnsRecord(REV, f"{fourth + 1}.{third}.{REV}", "PTR", 300, (fqdn,)))
    return records


def state_of(zones: list[str], records: list[DnsRecord]) -> DesiredState:
    return DesiredState(
        dns_zones=tuple(DnsZone(z, "forward") for z in zones), dns_records=tuple(records)
    )


def timed_pass(
    target: Rfc2136Target, state: DesiredState
) -> tuple[TargetPlan, ApplyResult, float, float]:
    started = time.perf_counter()
    desired = target.desired(state)
    plan = build_target_plan(
        target=target.name, kind=target.kind, desired=desired, live=target.read(desired)
    )
    planned = time.perf_counter()
    result = target.apply(plan.changes)
    return plan, result, planned - started, time.perf_counter() - planned


def make_target(
    workdir: Path, name: str, *, port: int, key_file: Path, **extra: object
) -> Rfc2136Target:
    config = RuntimeConfig(source=SourceConfig(path=workdir), state_dir=workdir / "state")
    settings = {"server": "127.0.0.1", "port": port, "key_file": str(key_file), **extra}
    return build(name, settings, config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--compare", type=int, default=2_000, help="RRsets in the comparison")
    args = parser.parse_args()
    bench_started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_named(
            Path(tmp) / "named", dynamic_zones=(FWD, REV, BATCH_ZONE, SINGLE_ZONE), static_zones=()
        ) as named,
    ):
        workdir = Path(tmp)
        target = make_target(workdir, "dns", port=named.port, key_file=named.key_file)
        state = state_of([FWD, REV], site_records(args.hosts))

        plan, result, plan_s, apply_s = timed_pass(target, state)
        stats = target.stats
        print(f"initial load: {args.hosts} hosts = {len(plan.changes)} RRsets")
        print(f"  plan (AXFR of empty zones + diff): {plan_s:.3f} s")
        print(
            f"  apply: {apply_s:.3f} s, {result.writes} UPDATE messages, "
            f"{stats.bytes_sent / 1024:.0f} KiB, largest message {stats.largest_message} bytes "
            f"(limit 65535), {len(plan.changes) / apply_s:.0f} RRsets/s"
        )
        assert named.query(f"node{args.hosts - 1:05d}.{FWD}", "A")

        plan, result, plan_s, apply_s = timed_pass(target, state)
        print(
            f"no-op pass after the load: {len(plan.changes) + plan.owned_count} RRsets read "
            f"(the load's own UPDATEs taken in by IXFR) and diffed in {plan_s:.3f} s; "
            f"{len(plan.changes)} changes, {result.writes} messages"
        )
        # The same no-op pass twice more: the old way (every zone transferred) and the
        # new one (the SOA serial is the one of the last transfer: nothing transferred).
        target.snapshots.forget()
        _, _, full_s, _ = timed_pass(target, state)
        _, _, serial_s, _ = timed_pass(target, state)
        print(
            f"no-op pass, full AXFR (old way): {full_s:.3f} s; SOA serial unchanged, no "
            f"transfer: {serial_s:.3f} s; ratio {full_s / serial_s:.1f}x"
        )

        # A drift pass after one record was edited by hand in BIND: the zone's serial
        # moved, so the copy is brought up to date by IXFR (new) or transferred whole
        # by AXFR (old way). Each pass puts the record back; a no-op pass in between
        # takes in our own UPDATE.
        def hand_edit_pass(*, full: bool) -> tuple[float, int]:
            named.hand_update(FWD, [("replace", f"node00003.{FWD}", 300, "A 10.23.251.3")])
            if full:
                target.snapshots.forget()
            plan, _, drift_s, _ = timed_pass(target, state)
            timed_pass(target, state)
            return drift_s, len(plan.changes)

        before = target.snapshots.incremental
        ixfr_s, ixfr_changes = hand_edit_pass(full=False)
        used_ixfr = target.snapshots.incremental > before
        axfr_s, axfr_changes = hand_edit_pass(full=True)
        print(
            f"drift pass after a one-record hand edit: AXFR (old way) {axfr_s:.3f} s, "
            f"IXFR {ixfr_s:.3f} s (IXFR used: {used_ixfr}); ratio {axfr_s / ixfr_s:.1f}x; "
            f"drift found: {axfr_changes} and {ixfr_changes} change"
        )

        moved = site_records(args.hosts)
        moved[0] = DnsRecord(FWD, moved[0].name, "A", 300, ("10.23.250.1",))
        moved[1] = DnsRecord(REV, "1.250.23.10.in-addr.arpa.", "PTR", 300, moved[1].values)
        plan, result, plan_s, apply_s = timed_pass(target, state_of([FWD, REV], moved))
        print(
            f"one-host re-address: {len(plan.changes)} RRset changes in {result.writes} UPDATE "
            f"message(s) (one per zone touched: A in {FWD}, PTR in {REV}); "
            f"plan {plan_s:.3f} s, apply {apply_s * 1000:.1f} ms"
        )
        alias = DnsRecord(FWD, f"login.{FWD}", "CNAME", 300, (f"node00002.{FWD}",))
        plan, result, plan_s, apply_s = timed_pass(target, state_of([FWD, REV], [*moved, alias]))
        print(
            f"one alias added: {len(plan.changes)} RRset change in {result.writes} UPDATE "
            f"message; apply {apply_s * 1000:.1f} ms"
        )

        count = args.compare
        batched = make_target(workdir, "batched", port=named.port, key_file=named.key_file)
        single = make_target(
            workdir,
            "single",
            port=named.port,
            key_file=named.key_file,
            max_changes_per_message=1,
        )
        _, b_result, _, b_apply = timed_pass(
            batched, state_of([BATCH_ZONE], site_records(count, zone=BATCH_ZONE, with_ptr=False))
        )
        _, s_result, _, s_apply = timed_pass(
            single, state_of([SINGLE_ZONE], site_records(count, zone=SINGLE_ZONE, with_ptr=False))
        )
        print(f"batched vs one message per RRset, {count} A RRsets each, same server and run:")
        print(
            f"  batched: {b_apply:.3f} s in {b_result.writes} messages "
            f"({count / b_apply:.0f} RRsets/s)"
        )
        print(
            f"  one per RRset: {s_apply:.3f} s in {s_result.writes} messages "
            f"({count / s_apply:.0f} RRsets/s)"
        )
        print(f"  ratio: one-per-RRset is {s_apply / b_apply:.1f}x slower than batched")
    print(f"benchmark total: {time.perf_counter() - bench_started:.1f} s")


if __name__ == "__main__":
    main()
