"""The connection layer under `digitnet serve`: deadlines, capacity, refusals.

A threaded HTTP server gives each connection a thread that blocks on its
reads, so a client that sends slowly, or not at all, holds a thread for as
long as the socket's timeout allows per read: one byte every few seconds
holds it forever (slowloris).  Here every request has one deadline for all
its reads, the number of connections served at once is bounded, the ones
beyond it wait a little in a bounded queue, and the ones that still find no
room are answered 503 by one thread that owns them all, so a client never
gets an empty reply.  serve.py holds the limits; this module only applies
them.
"""

import io
import math
import queue
import selectors
import socket
import threading
import time
from http.server import ThreadingHTTPServer

# The names a server on this machine is always reached by.
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})


class HTTPError(Exception):
    """A request we refuse: its status and one line saying why."""

    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status, self.headers = status, headers or {}


class Deadline(socket.SocketIO):
    """A socket's reads, all ending by one deadline rather than each
    allowed its own timeout: reading headers a byte at a time cannot
    outlast it."""

    def __init__(self, sock):
        super().__init__(sock, "rb")
        self.deadline = math.inf

    def readinto(self, b):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request took too long to arrive")
        self._sock.settimeout(left)
        return super().readinto(b)


def deadline_reader(sock):
    """(raw, buffered): a Deadline on `sock`, and the buffered file to read."""
    raw = Deadline(sock)
    return raw, io.BufferedReader(raw)


def response(status, reason, body, headers=()):
    """The bytes of a whole HTTP/1.1 answer that closes its connection."""
    lines = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json",
             f"Content-Length: {len(body)}", "Connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def bracketed(name):
    """A host name as a Host header spells it: IPv6 addresses in brackets."""
    name = name.strip().lower().rstrip(".")
    return f"[{name}]" if ":" in name and not name.startswith("[") else name


def host_name(header):
    """The name in a Host header, lower case and without its port."""
    h = header.strip().lower()
    if h.startswith("["):
        return h[:h.index("]") + 1] if "]" in h else h
    return (h.rsplit(":", 1)[0] if h.count(":") == 1 else h).rstrip(".")


def host_names(host, allowed=()):
    """The Host names a server bound to `host` answers: this machine's own,
    `host`, and the `allowed` ones (--allow-host)."""
    return LOCAL_NAMES | {bracketed(host)} | {bracketed(a) for a in allowed}


def linger(connection, limit=65536, seconds=0.5):
    """Read (and drop) a little of what a refused client is still sending,
    so closing does not reset the connection before it reads our answer."""
    try:
        connection.shutdown(socket.SHUT_WR)
        connection.settimeout(seconds)
        while limit > 0:
            chunk = connection.recv(min(limit, 16384))
            if not chunk:
                break
            limit -= len(chunk)
    except OSError:
        pass


class Budget:
    """A count of bytes held (request bodies) that may not exceed `total`."""

    def __init__(self, total):
        self.left, self._lock = total, threading.Lock()

    def take(self, n):
        with self._lock:
            if n > self.left:
                return False
            self.left -= n
            return True

    def give(self, n):
        with self._lock:
            self.left += n


class Refuser:
    """One thread that answers the connections there is no room for.

    Each gets its answer at once; then whatever its client still sends is
    read and dropped until it closes, or for `linger` seconds, so that
    closing never resets the connection before the client has read the
    answer (a reset loses it).  At most `most` are held; past that a
    connection is closed bare, as nothing more can be done for it cheaply.
    """

    def __init__(self, most=1024, linger=2.0):
        self.most, self.linger = most, linger
        self.pending = queue.SimpleQueue()
        self.selector = selectors.DefaultSelector()
        self._wake, self._waker = socket.socketpair()
        self._wake.setblocking(False)
        self.selector.register(self._wake, selectors.EVENT_READ)
        self.held = {}  # socket: when to close it
        threading.Thread(target=self._run, daemon=True, name="refuser").start()

    def refuse(self, sock, answer):
        self.pending.put((sock, answer))
        self._poke()

    def stop(self):
        self.pending.put(None)
        self._poke()

    def _poke(self):
        try:
            self._waker.send(b"x")
        except OSError:  # stopped, or the pipe is full: it wakes anyway
            pass

    def _run(self):
        while True:
            wait = min(self.held.values(), default=time.monotonic() + 60) - time.monotonic()
            for key, _ in self.selector.select(max(0.0, wait)):
                if key.fileobj is self._wake:
                    self._drain(self._wake)
                elif not self._drain(key.fileobj):
                    self._close(key.fileobj)
            while not self.pending.empty():
                item = self.pending.get()
                if item is None:
                    return self._shut()
                self._take(*item)
            now = time.monotonic()
            for sock in [s for s, t in self.held.items() if t <= now]:
                self._close(sock)

    def _take(self, sock, answer):
        try:
            sock.setblocking(False)
            sock.send(answer)  # a fresh socket's send buffer takes it whole
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            sock.close()
            return
        if len(self.held) >= self.most:
            sock.close()
            return
        self.selector.register(sock, selectors.EVENT_READ)
        self.held[sock] = time.monotonic() + self.linger

    @staticmethod
    def _drain(sock):
        """Read what is there; False when the peer has closed (or failed)."""
        try:
            while True:
                if not sock.recv(65536):
                    return False
        except BlockingIOError:
            return True
        except OSError:
            return False

    def _close(self, sock):
        self.selector.unregister(sock)
        del self.held[sock]
        sock.close()

    def _shut(self):
        for sock in list(self.held):
            self._close(sock)
        self.selector.close()
        self._wake.close()
        self._waker.close()


class LimitedServer(ThreadingHTTPServer):
    """ThreadingHTTPServer serving at most `connections` at once.

    Beyond that a connection waits up to `wait` seconds for a free one (at
    most `queue` of them wait; a waiting connection costs a sleeping thread
    and nothing else), and is otherwise answered with `busy` (a whole HTTP
    answer, bytes) by the Refuser.  Threads are daemons (stopping never
    waits for a client); the listen queue is long, for bursts; IPv6 when
    the host is.
    """

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address, handler, connections, queue, wait, busy):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.slots = threading.BoundedSemaphore(connections)
        self.waiting = threading.BoundedSemaphore(queue)
        self.wait, self.busy = wait, busy
        self.refuser = Refuser()
        try:
            super().__init__(address, handler)
        except BaseException:
            self.refuser.stop()
            raise

    def process_request(self, request, client_address):
        if self.slots.acquire(blocking=False):
            target = self.process_request_thread
        elif self.waiting.acquire(blocking=False):
            target = self._queued
        else:
            return self.refuser.refuse(request, self.busy)
        threading.Thread(target=target, args=(request, client_address), daemon=True).start()

    def _queued(self, request, client_address):
        try:
            free = self.slots.acquire(timeout=self.wait)
        finally:
            self.waiting.release()
        if free:
            self.process_request_thread(request, client_address)
        else:
            self.refuser.refuse(request, self.busy)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def server_close(self):
        super().server_close()
        self.refuser.stop()
