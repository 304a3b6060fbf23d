"""Rolling image updates: which nodes of a group get a new image, wave by wave.

``controller.decide`` is the pure decision; ``state`` holds the values it reads
and writes. The watch loop and the operator call it and persist what it returns.
"""
