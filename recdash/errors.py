"""The errors recdash raises on purpose, under one base.

:class:`RecdashError` is the base of every error recdash raises itself. :class:`UserError` is the part of it whose
message is written for the person at the screen or the command line (a bad flag, an unknown user, a store that
cannot be reached): pages and the CLI show those messages as they are, and catch nothing else. Anything else that
escapes (a ``KeyError`` in recdash, a library's ``ValueError``) is a bug and is not dressed up as a user message.

Each module keeps its own subclass (``DatasetError``, ``TrackingError``, ...) next to the code that raises it, so a
caller that wants one kind can still catch it; the subclasses also derive from the builtin the code raised before
(``ValueError``, ``RuntimeError``, ``LookupError``) so existing ``except`` clauses keep working.
"""

from __future__ import annotations


class RecdashError(Exception):
    """Base of every error recdash raises on purpose."""


class UserError(RecdashError):
    """An error whose message is meant for the user: shown as it is by pages and the CLI (no stack trace)."""


__all__ = ["RecdashError", "UserError"]
