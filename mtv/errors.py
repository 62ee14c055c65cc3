"""The one error type for bad configurations and bad checkpoints."""


class ConfigError(ValueError):
    """A configuration or checkpoint that cannot build a model; the message names the key and the fix."""
