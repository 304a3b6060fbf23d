"""The node agent: moves a stateless node to the image serve assigns it, live where it can.

It runs on the node, inside images that have ``python3`` and nothing of the
reconciler's dependencies, so this package uses the standard library only and
imports nothing from the rest of ``reconciler`` (a unit test checks that). It
is shipped as a zipapp (``agent.pyz``, see ``build``) and runs as
``reconciler agent`` too. The protocol is in ``docs/node-protocol.md``.
"""

AGENT_VERSION = "1"
