"""A whole site on one machine: namespaces, dhcpd, named, tftpd, serve and watch.

``reconciler sandbox`` (``scripts/demo.sh``) uses it to show a newcomer a
commit applied live; the integration tests use the same daemon launchers
(``netns``, ``dhcp``, ``named``, ``tftp``), so the demo and the tests share
one implementation. Everything here needs root and only contacts loopback
and addresses inside namespaces it created.
"""
