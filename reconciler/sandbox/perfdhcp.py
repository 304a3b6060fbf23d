"""perfdhcp (from Kea) as steady DHCP load on a dhcpd in a namespace, and what it counted.

Used by the DHCP outage benchmark and its integration test: while host
reservations change, does the server keep answering? perfdhcp runs in the
client namespace as a relay (it sends to the server's address, giaddr = its
own), makes DISCOVER/REQUEST exchanges at a fixed rate for a fixed time from a
set of random client MACs, and reports per exchange type how many requests
were sent and answered. A request never answered is what a booting machine
would see as an outage.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

from reconciler.sandbox.netns import NetnsPair, popen_in, require

PERFDHCP = "/usr/sbin/perfdhcp"  # Debian: kea-admin


@dataclass(frozen=True)
class Exchange:
    """One exchange type's counters (DISCOVER-OFFER or REQUEST-ACK) and delays in ms."""

    sent: int
    received: int
    avg_ms: float
    max_ms: float

    @property
    def unanswered(self) -> int:
        return self.sent - self.received


@dataclass(frozen=True)
class PerfdhcpReport:
    """perfdhcp's final report, reduced to what an outage comparison needs."""

    discover: Exchange
    request: Exchange
    output: str

    @property
    def unanswered(self) -> int:
        return self.discover.unanswered + self.request.unanswered


_SECTION = re.compile(
    r"\*\*\*Statistics for: (DISCOVER-OFFER|REQUEST-ACK)\*\*\*\n(.*?)(?=\*\*\*|\Z)", re.S
)


def _number(block: str, label: str) -> float:
    found = re.search(rf"^{label}: ([0-9.]+)", block, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def parse_report(output: str) -> PerfdhcpReport:
    """The two exchange sections of perfdhcp's final report; ValueError when absent."""
    sections: dict[str, Exchange] = {}
    for name, block in _SECTION.findall(output):
        sections[name] = Exchange(
            sent=int(_number(block, "sent packets")),
            received=int(_number(block, "received packets")),
            avg_ms=_number(block, "avg delay"),
            max_ms=_number(block, "max delay"),
        )
    if "DISCOVER-OFFER" not in sections:
        raise ValueError(f"perfdhcp printed no DISCOVER-OFFER statistics:\n{output[-2000:]}")
    empty = Exchange(sent=0, received=0, avg_ms=0.0, max_ms=0.0)
    return PerfdhcpReport(
        discover=sections["DISCOVER-OFFER"],
        request=sections.get("REQUEST-ACK", empty),
        output=output,
    )


class Perfdhcp:
    """perfdhcp running in the background against the pair's server; ``wait`` for the report."""

    def __init__(
        self,
        pair: NetnsPair,
        *,
        rate: int,
        seconds: int,
        clients: int = 10_000,
        drop_after: float = 2.0,
        nice: int = 0,
        report_every: int = 0,
    ) -> None:
        """``report_every`` s: a report each that often besides the final one (0: none)."""
        require(PERFDHCP)
        self.seconds = int(seconds)
        argv = (["nice", "-n", str(nice)] if nice else []) + [
            PERFDHCP, "-4", "-l", pair.client_if, "-r", str(rate), "-p", str(int(seconds)),
            "-R", str(clients), "-s", "1", "-d", str(drop_after),
            # after the period, wait for answers still on their way before counting
            "-W", str(int(drop_after * 1_000_000)),
            *(["-t", str(report_every)] if report_every else []), pair.server_ip,
        ]  # fmt: skip
        self.process = popen_in(pair.client, argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        pair.on_cleanup(self.stop)

    def wait(self, *, grace: float = 30.0) -> PerfdhcpReport:
        """The final report; perfdhcp is killed if it runs ``grace`` s past its period."""
        try:
            output, _ = self.process.communicate(timeout=self.seconds + grace)
        except subprocess.TimeoutExpired:
            self.stop()
            raise TimeoutError(f"perfdhcp ran {grace}s past its {self.seconds}s period") from None
        return parse_report(output.decode(errors="replace"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)
