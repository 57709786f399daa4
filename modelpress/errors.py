"""One root exception for everything modelpress reports to a user.

Each subclass carries the HTTP status the service answers with and the exit code the CLI ends with,
so the two front doors render the same failure the same way::

    try:
        modelpress.convert("missing.keras", profile="raspberry-pi-4", out="out/")
    except modelpress.ModelpressError as err:
        print(err)            # one line: what happened, what was expected, how to fix it
        sys.exit(err.exit_code)
"""

from __future__ import annotations


def excerpt(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters: an error quotes what a client sent, never all of it."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


class ModelpressError(Exception):
    """Base class: an expected failure with a message fit for the user."""

    http_status = 500
    exit_code = 1


class UsageError(ModelpressError):
    """A bad argument or option value."""

    http_status = 400
    exit_code = 2


class ProfileError(UsageError):
    """A device profile is unknown or invalid."""


class RecipeError(UsageError):
    """A compression recipe is unknown or invalid."""


class ModelLoadError(ModelpressError):
    """A model file is missing, corrupt or of a kind modelpress cannot read."""

    http_status = 422
    exit_code = 3


class DataError(ModelpressError):
    """Calibration, training or evaluation data is missing or malformed."""

    http_status = 400
    exit_code = 4


class ConversionError(ModelpressError):
    """The converter failed to produce an artifact."""

    exit_code = 5


class ConstraintError(ConversionError):
    """An artifact breaks a device profile constraint (size, op set, dtypes)."""

    exit_code = 6


class FidelityError(ConversionError):
    """An artifact disagrees with its source model more than the profile allows."""

    exit_code = 7


class CompressionError(ModelpressError):
    """A compression step cannot be applied to this model."""

    exit_code = 8


class ArtifactError(ModelpressError):
    """A model package (artifact folder) is incomplete or malformed."""

    http_status = 422
    exit_code = 9


class BudgetError(ModelpressError):
    """No candidate of a ``press`` search met the accuracy budget and the device's constraints."""

    http_status = 422
    exit_code = 11


class ServingError(ModelpressError):
    """Base for errors raised while answering a request."""

    http_status = 500
    exit_code = 10


class NotFoundError(ServingError):
    """An unknown model, version or label."""

    http_status = 404


class BadRequestError(ServingError):
    """A malformed request: wrong JSON, shape, dtype or encoding."""

    http_status = 400


class UnauthorizedError(ServingError):
    """A missing or wrong bearer token."""

    http_status = 401


class PayloadTooLargeError(ServingError):
    """A request body over the configured limit."""

    http_status = 413


class UnavailableError(ServingError):
    """The model is not ready, or its queue is full; the client should retry."""

    http_status = 503

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after
