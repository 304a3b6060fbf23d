"""A real dhcpd and dhclient for the DHCP tests: the sandbox's implementation, re-exported.

The code lives in ``reconciler.sandbox.dhcp`` so ``reconciler sandbox`` and the
tests share one implementation; tests keep importing it from here.
"""

from __future__ import annotations

from reconciler.sandbox.dhcp import KEY_NAME, OMAPI_PORT, DhcpClient, Dhcpd, Lease, write_key

__all__ = ["KEY_NAME", "OMAPI_PORT", "DhcpClient", "Dhcpd", "Lease", "write_key"]
