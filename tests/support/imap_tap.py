"""A TCP relay in front of a real IMAP server that writes down the commands clients send.

Tests point the bot at the tap instead of the server and read what the watcher asked for
(how many UID SEARCHes a new mail cost, when it went back to IDLE). Bytes pass through
unchanged in both directions; only the client's lines are recorded.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    connection: int
    line: str

    @property
    def verb(self) -> str:
        """The command without its tag and arguments: "UID SEARCH", "IDLE", "DONE"."""
        words = self.line.split()
        if not words:
            return ""
        if words[0].upper() == "DONE" or len(words) == 1:
            return words[0].upper()
        if words[1].upper() == "UID" and len(words) > 2:
            return f"UID {words[2].upper()}"
        return words[1].upper()


class ImapTap:
    def __init__(self, upstream_host: str, upstream_port: int, *, user: str, password: str) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.user = user
        self.password = password
        self._server = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = "127.0.0.1", self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._commands: list[Command] = []
        self._sockets: list[socket.socket] = []
        self._connections = 0
        self._closed = False
        self._hold_verb: str | None = None
        self.held = threading.Event()
        self._released = threading.Event()
        threading.Thread(target=self._accept, name="imap-tap", daemon=True).start()

    def commands(self) -> list[Command]:
        with self._lock:
            return list(self._commands)

    def wait_for(self, predicate, timeout: float = 20.0) -> list[Command]:  # type: ignore[no-untyped-def]
        """Wait until `predicate(commands)` holds; returns the commands then."""
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self._commands), timeout):
                raise AssertionError(f"the IMAP tap never saw what it waited for; saw {self._commands}")
            return list(self._commands)

    def hold(self, verb: str) -> None:
        """Keep the next command with this verb (and what follows it) from the server until
        `release`: the client then waits in that command, as on a slow server."""
        with self._lock:
            self._hold_verb = verb
            self.held.clear()
            self._released.clear()

    def release(self) -> None:
        self._released.set()

    def close(self) -> None:
        self._released.set()
        with self._lock:
            self._closed = True
            sockets = [self._server, *self._sockets]
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def __enter__(self) -> ImapTap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            with self._lock:
                if self._closed:
                    client.close()
                    upstream.close()
                    return
                self._connections += 1
                number = self._connections
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, number), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, None), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, record_as: int | None) -> None:
        pending = b""
        try:
            while chunk := source.recv(65536):
                if record_as is None:
                    sink.sendall(chunk)
                    continue
                pending += chunk
                *lines, pending = pending.split(b"\r\n")
                commands = [Command(record_as, line.decode("utf-8", "replace")) for line in lines]
                with self._changed:
                    self._commands += commands
                    self._changed.notify_all()
                    hold = self._hold_verb is not None and any(c.verb == self._hold_verb for c in commands)
                    if hold:
                        self._hold_verb = None
                if hold:
                    self.held.set()
                    self._released.wait()
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)
