"""fronde: build a compact DeepSeek-style language model and make it beat bigger ones on your own work."""

__version__ = "0.1.0"
