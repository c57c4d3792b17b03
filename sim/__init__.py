"""Simulation core: SimPy engine, frozen state/decision types, protocols, units, errors, recorder.

This package imports nothing else from the project; every other layer imports it.
"""
