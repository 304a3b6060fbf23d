"""A real tftpd-hpa and tftp-hpa client for the boot tests: the sandbox's implementation.

The code lives in ``reconciler.sandbox.tftp`` so ``reconciler sandbox`` and the
tests share one implementation; tests keep importing it from here.
"""

from __future__ import annotations

from reconciler.sandbox.tftp import TFTP, TFTPD, free_udp_port, tftp_get, tftpd

__all__ = ["TFTP", "TFTPD", "free_udp_port", "tftp_get", "tftpd"]
