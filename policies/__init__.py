"""Dispatch policies; ``policies.registry`` holds them all by name. Policies import only ``sim``.

The package imports nothing itself, so importing one policy module does not load every other
one through the registry.
"""
