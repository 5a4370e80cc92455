"""Exception types shared by the modules that check user input.

A separate module so that references, validation, the API and the CLI can all raise and catch the
same type without importing each other.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A problem in the user's configuration, phrased for someone who has never read flops_fit's code.

    A ``ValueError`` so that callers who catch bad values in general also catch this; the message
    always names the config key (e.g. ``model.class``) and says how to fix it.
    """
