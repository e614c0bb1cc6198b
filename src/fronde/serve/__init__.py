"""The private OpenAI-compatible server: a thin HTTP layer over fronde.infer's engine."""
