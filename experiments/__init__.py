"""Experiments: scenario schema, building, runs, metrics, figures and the CLI.

The only layer that wires ``sim``, ``agents``, ``grids`` and ``policies`` together.
"""
