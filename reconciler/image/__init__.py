"""Preparing node images: put the agent into an image tree, add a built version to the inventory.

Users build image trees with their own tools (debootstrap, mkosi, a container);
``reconciler image install-agent`` adds what the node side needs before
``mksquashfs``, and ``reconciler image add`` records the built artifacts'
sha256s in ``images/<name>.yaml``.
"""
