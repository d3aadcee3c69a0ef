"""One exception type for everything a user can get wrong.

The CLI turns a `NeuromasError` into a single red line and a non-zero exit, never a traceback:
bad configs, missing data, impossible topologies and unimportable reward functions all raise it
with a message that names the offending value and says how to fix it.
"""


class NeuromasError(Exception):
    """A problem with the user's input (config, data, request), with a one-line fix in the message."""


def missing_extra(what: str, extra: str) -> NeuromasError:
    """The one line for a command or option whose optional dependencies are not installed.

    README command 1 installs the package without extras, so every command the README names
    either works after it or says here, in one line, which extra to add (exit status 2 in the
    CLI instead of an import traceback).
    """
    return NeuromasError(f"{what} needs the optional extra [{extra}]: pip install \"neuromas[{extra}]\" "
                         f"(in a clone of the repository: pip install -e \".[{extra}]\")")
