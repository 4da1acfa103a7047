"""Ctrl-C and SIGTERM for the commands that run on (training, serve): one
way to catch both for a while and give the previous handlers back.

(`python -m digitnet`'s first moments, while Python imports, are
__main__.py's: there a signal ends the command at once, before this or
anything else is imported.)
"""

import contextlib
import signal

STOPPING = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def caught(handler):
    """Call handler(signum, frame) for SIGINT and SIGTERM inside the block;
    the handlers before it are back afterwards, however the block ends (an
    exception the handler raises included)."""
    previous = {s: signal.signal(s, handler) for s in STOPPING}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
