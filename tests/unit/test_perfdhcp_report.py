"""perfdhcp's final report is read into sent/answered counts per exchange type."""

from __future__ import annotations

import pytest

from reconciler.sandbox.perfdhcp import parse_report

REPORT = """Running: perfdhcp -4 -l vc1 -r 50 -p 5 10.77.0.1
Multi-thread mode enabled.
***Rate statistics***
Rate: 49.7888 4-way exchanges/second, expected rate: 50

***Statistics for: DISCOVER-OFFER***
sent packets: 249
received packets: 240
drops: 9
orphans: 0

min delay: 0.364 ms
avg delay: 1.037 ms
max delay: 4.046 ms
collected packets: 0

***Statistics for: REQUEST-ACK***
sent packets: 240
received packets: 238
drops: 2

avg delay: 1.964 ms
max delay: 9.301 ms
"""


def test_counts_and_delays_of_both_exchanges() -> None:
    report = parse_report(REPORT)
    assert (report.discover.sent, report.discover.received) == (249, 240)
    assert (report.request.sent, report.request.received) == (240, 238)
    assert report.discover.avg_ms == 1.037 and report.request.max_ms == 9.301
    assert report.unanswered == 11


def test_output_without_statistics_is_an_error() -> None:
    with pytest.raises(ValueError, match="no DISCOVER-OFFER"):
        parse_report("ERROR: parsing command line options\n")
