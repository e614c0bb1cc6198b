"""The one exception type the data layer raises for problems a user can fix.

It subclasses ValueError so generic callers still catch it; the CLI prints its message in red and
exits with code 2, without a traceback, because the message already says which file or field is
wrong and what to do about it.
"""

from __future__ import annotations


class DataError(ValueError):
    """A user-fixable problem with the corpus, the recipe or an output directory."""
