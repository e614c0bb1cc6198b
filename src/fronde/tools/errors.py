"""The two kinds of tool errors: a tool the user defined badly, and a call that failed at run time.

A bad definition or spec (`ToolError`) is the user's to fix, so it is a DataError and the CLI prints it without a
traceback. A failed call is the model's to read: the Toolbox never raises for it, it returns `error: ...` as the
tool's result. Tools raise `ToolCallError` when their message is already worded for the model (it goes back as is,
without the exception's type name); `ToolTimeout` for a tool that enforced its own time limit.
"""

from __future__ import annotations

from fronde.data.errors import DataError


class ToolError(DataError):
    """A user-fixable problem with a tool's definition, a tool spec or a toolbox."""


class ToolCallError(ValueError):
    """A tool's own refusal or failure, worded for the model; the Toolbox passes the message on as is."""


class ToolTimeout(ToolCallError):
    """A tool that enforces its own time limit ran past it (reported as a timeout, like a killed tool)."""
