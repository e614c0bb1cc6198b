"""Inference: the paged latent cache, sampling, and the continuous-batching engine (no HTTP here)."""
