"""User-facing errors: each carries a one-line message that names the culprit."""


class AebenchError(Exception):
    """A problem with the user's input or environment, reported in one line."""


class ConfigError(AebenchError):
    """params.yaml (or a value derived from it) is invalid."""


class DataError(AebenchError):
    """A dataset file is missing, corrupt, truncated or fails its checksum."""


class CheckpointError(AebenchError):
    """A checkpoint is missing, truncated or does not match what is expected."""


class TrainingDiverged(AebenchError):
    """The loss became NaN or infinite."""
