"""Import benchmark: ``reconciler import`` of a generated legacy site, time and peak memory.

Run by hand: ``.venv/bin/python bench/bench_import.py [--hosts 10000]``. The site
is what a large hand-kept installation looks like: one /24 per rack of 250
blades (``r07n123``), host blocks in ``group``s with inherited ``filename``,
upper-case MACs, a class and comments; 1% of the hosts off the address pattern
and a few with irregular names; a forward zone and one reverse zone per rack.
It prints the whole process (start-up included, best of three) with its peak
RSS, an in-process breakdown by phase, and the same figures for a tenth of
the hosts so the scaling shows as a ratio. ``reconciler validate`` of the
result is printed beside it as the yardstick.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECONCILER = Path(sys.executable).parent / "reconciler"
RACK = 250


def generate_site(folder: Path, hosts: int) -> list[str]:
    """Write dhcpd.conf and zone files for ``hosts`` machines; the import arguments."""
    racks = -(-hosts // RACK)
    conf = [
        '# generated legacy site\nauthoritative;\noption domain-name "big.example";\n',
        'class "pxe" { match if substring(option vendor-class-identifier, 0, 9) = "PXEClient"; }\n',
    ]
    forward = [
        "$TTL 600\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n  IN NS ns1\nns1 IN A 10.0.0.1\n"
    ]
    reverse: dict[int, list[str]] = {}
    made = 0
    for rack in range(racks):
        third = rack + 1
        conf.append(
            f"subnet 10.40.{third}.0 netmask 255.255.255.0 {{\n"
            f"  option routers 10.40.{third}.254;\n"
            f"  next-server 10.40.{third}.253;\n"
            f"  pool {{ range 10.40.{third}.251 10.40.{third}.252; }}\n}}\n"
            f'group {{\n  filename "pxelinux.0";   # rack {rack}\n'
        )
        reverse[third] = [
            "$TTL 600\n@ IN SOA ns1.big.example. h.big.example. 1 3600 600 86400 60\n"
            "@ IN NS ns1.big.example.\n"
        ]
        for index in range(1, min(RACK, hosts - made) + 1):
            made += 1
            name = f"r{rack:02d}n{index:03d}" if made % 500 else f"special{made}"
            last = index if made % 100 else 200 + index % 40  # 1% off the pattern
            address = f"10.40.{third}.{last}"
            mac = f"52:54:{(made >> 16) & 255:02X}:{(made >> 8) & 255:02X}:{made & 255:02X}:01"
            conf.append(
                f"  host {name} {{\n    hardware ethernet {mac};\n"
                f"    fixed-address {address};\n  }}\n"
            )
            forward.append(f"{name} IN A {address}\n")
            reverse[third].append(f"{last} IN PTR {name}.big.example.\n")
        conf.append("}\n")
    (folder / "dhcpd.conf").write_text("".join(conf))
    (folder / "db.big.example").write_text("".join(forward))
    args = ["--dhcpd-conf", str(folder / "dhcpd.conf"), "--zone", str(folder / "db.big.example")]
    for third, lines in reverse.items():
        path = folder / f"{third}.40.10.in-addr.arpa.zone"
        path.write_text("".join(lines))
        args += ["--zone", str(path)]
    return args


def timed_process(command: list[str], *, expect: tuple[int, ...]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode not in expect:
        raise SystemExit(f"{command[1]} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return elapsed


def in_process(args: list[str], out: Path) -> dict[str, float]:
    """Seconds per phase of one import, run in this process."""
    from reconciler.importer.dhcpd_conf import read_dhcpd_conf
    from reconciler.importer.records import Sources
    from reconciler.importer.run import infer_site
    from reconciler.importer.writer import check_files, render_files, write_folder
    from reconciler.importer.zones import read_zone_file

    phases: dict[str, float] = {}
    sources = Sources()
    started = time.perf_counter()
    read_dhcpd_conf(Path(args[1]), sources)
    phases["dhcpd.conf"] = time.perf_counter() - started
    started = time.perf_counter()
    for zone in (a for i, a in enumerate(args) if args[i - 1] == "--zone"):
        read_zone_file(zone, sources)
    phases["zones (dnspython)"] = time.perf_counter() - started
    started = time.perf_counter()
    result = infer_site(sources, domain=None)
    phases["infer"] = time.perf_counter() - started
    started = time.perf_counter()
    files = render_files(result, [], inputs=[])
    check_files(files)
    phases["render+validate"] = time.perf_counter() - started
    started = time.perf_counter()
    write_folder(out, files)
    phases["write"] = time.perf_counter() - started
    return phases


def measure(hosts: int, runs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        folder = Path(tmp)
        args = generate_site(folder, hosts)
        best = float("inf")
        for run in range(runs):
            out = folder / f"out{run}"
            best = min(
                best,
                timed_process([str(RECONCILER), "import", "--out", str(out), *args], expect=(0, 1)),
            )
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        validate = min(
            timed_process([str(RECONCILER), "validate", str(folder / "out0")], expect=(0,))
            for _ in range(runs)
        )
        phases = in_process(args, folder / "in-process")
        conf_mb = (folder / "dhcpd.conf").stat().st_size / 1e6
    return {"import": best, "validate": validate, "peak_mb": peak_mb, "conf_mb": conf_mb, **phases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    small = measure(options.hosts // 10, options.runs)
    large = measure(options.hosts, options.runs)
    header = f"{'hosts':>8} {'dhcpd.conf':>10} {'import':>8} {'peak RSS':>9} {'validate':>9}"
    print(f"{header}  phases (in-process)")
    for count, figures in ((options.hosts // 10, small), (options.hosts, large)):
        phases = ", ".join(
            f"{k} {figures[k]:.2f}s"
            for k in ("dhcpd.conf", "zones (dnspython)", "infer", "render+validate", "write")
        )
        print(
            f"{count:>8} {figures['conf_mb']:>8.1f}MB {figures['import']:>7.2f}s "
            f"{figures['peak_mb']:>7.0f}MB {figures['validate']:>8.2f}s  {phases}"
        )
    print(
        f"10x the hosts: import {large['import'] / small['import']:.1f}x the time; "
        f"import / validate = {large['import'] / large['validate']:.1f}"
    )


if __name__ == "__main__":
    main()
