"""One query string of many statements sent, and the reply of every statement the server runs read,
errors included (libpq's asynchronous API): psycopg's execute() drops the replies before an error, and
a batch of fixes needs each one to know which sequence's transaction committed."""

from __future__ import annotations

import selectors
from typing import Callable

import psycopg
from psycopg import errors
from psycopg.pq import DiagnosticField, ExecStatus, PGconn


def exchange(conn: psycopg.Connection, query: bytes,
              meanwhile: Callable[[], None] | None = None) -> tuple[list, bool, BaseException | None]:
    """Send one query string, call `meanwhile` (if any) once it is sent, and read the reply (a PGresult)
    of every statement the server runs, errors included: (replies, whether the whole string was sent,
    why the exchange ended early or None).
    psycopg's execute() cannot do this: on an error it drops the replies before it. On Ctrl+C the
    statement running is cancelled and the rest of the reply read before KeyboardInterrupt is returned
    (a second Ctrl+C, or a failed cancel, closes the connection instead)."""
    pgconn = conn.pgconn
    replies: list = []
    sent = False
    try:
        pgconn.send_query(query)
        while pgconn.flush():  # the connection is non-blocking: a long string may take several writes
            if _wait(pgconn, write=True) & selectors.EVENT_READ:
                pgconn.consume_input()
        sent = True
        if meanwhile is not None:
            meanwhile()
        read_replies(pgconn, replies)
        return replies, sent, None
    except psycopg.OperationalError as exc:  # the connection failed
        return replies, sent, exc
    except KeyboardInterrupt as exc:
        try:
            (getattr(conn, "cancel_safe", None) or conn.cancel)()  # cancel_safe: psycopg >= 3.2
            if not sent:
                while pgconn.flush():
                    _wait(pgconn, write=True)
                sent = True
            read_replies(pgconn, replies)
        except BaseException:
            conn.close()
        return replies, sent, exc


def read_replies(pgconn: PGconn, replies: list) -> None:
    while True:
        while pgconn.is_busy():
            _wait(pgconn)
            pgconn.consume_input()
        reply = pgconn.get_result()
        if reply is None:
            return
        replies.append(reply)


def _wait(pgconn: PGconn, write: bool = False) -> int:
    """Block until the connection's socket is readable (or writable): the events ready."""
    with selectors.DefaultSelector() as selector:
        selector.register(pgconn.socket, selectors.EVENT_READ | (selectors.EVENT_WRITE if write else 0))
        return sum(events for _, events in selector.select())


def committed(replies: list, count: int) -> bool:
    """Every statement of the transaction ran, the last one a COMMIT that committed."""
    return (len(replies) == count
            and all(r.status in (ExecStatus.COMMAND_OK, ExecStatus.TUPLES_OK) for r in replies)
            and replies[-1].command_status == b"COMMIT")


def error_of(reply, encoding: str) -> psycopg.Error:
    """The exception psycopg would raise for an error reply (class by SQLSTATE, primary message)."""
    sqlstate = (reply.error_field(DiagnosticField.SQLSTATE) or b"").decode("ascii", "replace")
    try:
        cls = errors.lookup(sqlstate)
    except KeyError:
        cls = psycopg.DatabaseError
    message = reply.error_field(DiagnosticField.MESSAGE_PRIMARY) or reply.error_message or b""
    return cls(message.decode(encoding, "replace"))
