"""Vehicle agents (mesa), batteries with a degradation slot, and road/rail graphs.

Imports only ``sim`` from the project.
"""
