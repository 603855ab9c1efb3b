"""Errors about what a user handed in (a path, a bag, a checkpoint), reported by the command line as one line.

No imports beyond the standard library, so every layer (torch-only `model/` included) can raise them and the
command line can catch them without importing torch or ROS.
"""
from __future__ import annotations

import sys


class InputError(Exception):
    """A file or folder given by the user that cannot be used; the message names it and says why, in one line."""


def one_line(error: BaseException) -> str:
    """The error's message on one line: its lines joined with '; ' (a checkpoint mismatch lists keys per line)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(lines) or type(error).__name__


def report(command: str, error: BaseException) -> int:
    """Print `diffusiondrive-ros COMMAND: reason` on stderr and return the exit code 1."""
    print(f"diffusiondrive-ros {command}: {one_line(error)}", file=sys.stderr)
    return 1
