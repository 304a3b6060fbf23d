"""Boot media: hybrid ISO images (USB stick or CD, BIOS or UEFI) built from a revision.

``build`` makes net media (iPXE chaining to ``serve``) and live media (the
image itself); ``write`` puts one on a stick safely. ``settings`` is the
``[media]`` table of the runtime config. Nothing is imported here, so the
config module can import the settings cheaply.
"""
