"""One exception type for everything a user can get wrong.

The CLI turns a `NeuromasError` into a single red line and a non-zero exit, never a traceback:
bad configs, missing data, impossible topologies and unimportable reward functions all raise it
with a message that names the offending value and says how to fix it.
"""


class NeuromasError(Exception):
    """A problem with the user's input (config, data, request), with a one-line fix in the message."""
