"""qwq: the QwQ-32B reasoning-model system, open and in Python."""

__version__ = "0.1.0"
