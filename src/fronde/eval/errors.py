"""The one error type of the evaluation layer."""

from __future__ import annotations

from fronde.data.errors import DataError


class EvalError(DataError):
    """A user-fixable problem with a model spec, an evaluation file or an option; the message names it and says
    what to do. A DataError, so the CLI prints it without a traceback like the other layers' errors."""
