"""`digitnet serve`: a draw-a-digit page for a saved network (see serve.py).

Everything that can go wrong before the first visitor does so before the
address is printed: a bad model file, a missing Pillow, a port in use are
each one line on stderr and exit 1, so a script that waits for the address
line never waits for a server that will not come.  Ctrl-C and SIGTERM stop
it cleanly with one line and exit 0: stopping a server is not a failure.
"""

import argparse
import ipaddress
import os
import signal
import sys
import threading

from . import signals
from .cliargs import add_data_args, add_device_arg, load_networks


def port_number(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0-65535 (0: any free port), got {value}")
    return value


def host_name(text):
    """An --allow-host name: what a browser puts in the Host header."""
    name = text.strip()
    if not name or any(c in name for c in "/@ \t") or name.count("]") > 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a host name (like myhost.local "
                                         "or 192.168.1.5, without scheme or port)")
    return name


def add_commands(sub):
    """Add `serve` to the `digitnet` subparsers."""
    s = sub.add_parser("serve", help="a local web page to write digits on and see what the "
                                     "network reads (needs digitnet[image])")
    s.add_argument("model", nargs="+", help="a saved network (.npz); several: their ensemble, "
                                            "the average of their outputs")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: %(default)s, this machine only)")
    s.add_argument("--port", type=port_number, default=8000,
                   help="(default: %(default)s; 0 picks a free one)")
    s.add_argument("--allow-host", action="append", default=[], type=host_name,
                   metavar="NAME", help="also answer requests for this host name (repeatable); "
                   "localhost, 127.0.0.1, [::1] and --host always are, others get 400")
    s.add_argument("--open", action="store_true", help="open the page in a web browser")
    add_data_args(s)
    add_device_arg(s)
    s.set_defaults(run=cmd_serve)


def exposure_warning(host):
    """A warning line when `host` lets other machines in, else None."""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:  # a name: localhost is safe, anything else may not be
        if host == "localhost":
            return None
    return (f"digitnet: warning: listening on {host}: anyone who can reach this machine "
            "can use the page (there is no login); the default 127.0.0.1 keeps it local. "
            "other machines reach it only as --host or a name given with --allow-host")


def cmd_serve(args, parser):
    from . import serve
    from .extras import require
    require("PIL", "image", "digitnet serve")  # before loading anything
    net = load_networks(args.model, args.device)
    name = args.model[0] if len(args.model) == 1 else " + ".join(
        os.path.basename(p) for p in args.model)
    app = serve.App(net, name=name, dataset=args.dataset or "mnist", data_dir=args.data_dir)
    try:
        server = serve.Server(app, args.host, args.port, args.allow_host)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OSError(f"cannot listen on {args.host}:{args.port}: {reason.lower()}"
                      + (" (another server? try another --port)"
                         if "in use" in reason.lower() else "")) from None
    warning = exposure_warning(args.host)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    one_blas_thread()
    app.start(notice=lambda line: print(line, file=sys.stderr, flush=True))
    return run(server, app, args.open)


def one_blas_thread():
    """One BLAS thread in this process, if threadpoolctl is installed: a
    picture's products are too small for a second to help, and OpenBLAS's
    threads spin while they wait, taking the cores that concurrent requests
    need (20 clients on 2 cores: conv predictions 4x slower)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return False
    threadpool_limits(1, user_api="blas")
    return True


def run(server, app, open_browser=False):
    """Serve until SIGINT or SIGTERM; the signal only sets an event, and the
    main thread then stops the serving thread between requests."""
    stop = threading.Event()
    caught = []

    def catch(signum, frame):
        caught.append(signum)
        stop.set()

    with signals.caught(catch):
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        print(f"serving {app.net.describe()} from {app.name} at {server.url}  "
              "(Ctrl-C to stop)", flush=True)
        if open_browser:
            threading.Thread(target=open_page, args=(server.url,), daemon=True).start()
        while not stop.wait(0.5):
            pass
        server.shutdown()
        server.server_close()
    name = "SIGTERM" if caught and caught[0] == signal.SIGTERM else "Ctrl-C"
    print(f"digitnet: {name}: server stopped", file=sys.stderr, flush=True)
    return 0


def open_page(url):
    import webbrowser
    try:
        opened = webbrowser.open(url)
    except Exception:  # noqa: BLE001 - no browser is not an error for a server
        opened = False
    if not opened:
        print(f"digitnet: notice: could not open a browser; open {url} yourself",
              file=sys.stderr, flush=True)
