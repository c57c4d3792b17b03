"""Dispatch policies and their registry. Policies import only ``sim``."""

from policies.registry import POLICIES, make_policy, policy_problems

__all__ = ["POLICIES", "make_policy", "policy_problems"]
