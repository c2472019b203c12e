"""Experiments built from runs: ResCL's source/target trade-off sweeps (``tradeoff``)."""
