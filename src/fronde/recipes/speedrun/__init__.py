"""Speedrun recipes: which stage recipes `fronde speedrun` chains, and how the result is evaluated."""
