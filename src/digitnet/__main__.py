"""`digitnet` and `python -m digitnet`.

Ctrl-C while Python is still importing NumPy and the rest (a good part of
a second) ends the command at once with one line and exit 130, never a
KeyboardInterrupt traceback: nothing has been done yet, so nothing needs
keeping.  Then cli.main takes Ctrl-C over (a training run stops cleanly
after its mini-batch).  SIGTERM is one line and exit 143 throughout, except
where a command handles it itself (training, serve).  Python's own start-up,
before this file runs (some 20 ms), is beyond any program's reach.
"""

import os
import signal
import sys

CODES = {signal.SIGINT: (130, b"digitnet: interrupted\n"),
         signal.SIGTERM: (143, b"digitnet: SIGTERM: stopped\n")}


def quit_now(signum, frame):
    code, line = CODES[signum]
    os.write(2, line)
    os._exit(code)


def run():
    """The console script's entry point: catch the signals, then import."""
    previous = {s: signal.signal(s, quit_now) for s in CODES}
    try:
        from .cli import main
        signal.signal(signal.SIGINT, previous[signal.SIGINT])
        return main()
    except KeyboardInterrupt:  # between the handlers and main's own
        print("digitnet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(run())
