"""``reconciler import``: turn a running site's configuration into an inventory folder.

One small module per source format (``dhcpd_conf``, ``leases``, ``zones``,
``pxelinux``, ``warewulf``, ``csvfile``) reads what it can into the plain
records of ``records``; ``infer`` merges them, finds groups and lists every
conflict; ``writer`` renders and validates the folder before anything is
written. Nothing here talks to a service except ``zones`` doing an AXFR.
"""
