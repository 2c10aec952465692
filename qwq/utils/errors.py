"""Typed errors. The CLI turns every QwqError into one line on stderr and exit code 2."""


class QwqError(Exception):
    """Base class for errors caused by bad input or a bad environment (never by a bug in qwq)."""


class UsageError(QwqError):
    """Bad command-line usage or an invalid parameter value."""


class ConfigError(QwqError):
    """A model or training config is malformed (names the field)."""


class CheckpointError(QwqError):
    """A checkpoint is missing, truncated or does not fit the model (names the tensor and the file)."""


class GGUFError(CheckpointError):
    """A GGUF file is corrupt or uses something qwq cannot read (names the tensor, the type or the field)."""


class ModelNotFoundError(QwqError):
    """A model spec is neither a path nor a known name, or its files are not installed."""


class TokenizerError(QwqError):
    """A tokenizer or chat template cannot be built or rendered."""
