"""Many commands in one round trip (in one MULTI/EXEC for writes), packed by hiredis: for
bulk work such as an import's chunk (a thousand people's hashes) or a batch's people,
where redis-py's pipeline spends more time encoding each argument and handling each reply
than Redis spends on the commands themselves.

The commands go out in one write and come back as one EXEC reply; the connection's own
retry (``infra/redis_connect.py``) repeats the whole transaction on a lost connection,
which is safe for writes that set values (HSET, ZADD NX, HDEL), as bulk writes here do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import hiredis
import redis

Arg = str | bytes | int | float
_MULTI = hiredis.pack_command(("MULTI",))
_EXEC = hiredis.pack_command(("EXEC",))


def transaction(r: redis.Redis, commands: Sequence[Sequence[Arg]]) -> list[Any]:
    """Run ``commands`` atomically; their replies, in order (an error reply raises)."""
    if not commands:
        return []
    # Floats are written as redis-py writes them (repr), so stored values do not change.
    pack = hiredis.pack_command
    packed = b"".join((_MULTI, *(pack(tuple(command)) for command in commands), _EXEC))

    def replies(connection: Any) -> list[Any]:
        for _ in range(len(commands) + 1):  # +OK, then +QUEUED each
            connection.read_response()
        return list(connection.read_response())

    return _send(r, packed, replies)


def pipeline(r: redis.Redis, commands: Sequence[Sequence[Arg]]) -> list[Any]:
    """Run ``commands`` in one round trip, not atomically (reads, say); their replies in
    order (an error reply raises)."""
    if not commands:
        return []
    packed = b"".join(hiredis.pack_command(tuple(command)) for command in commands)

    def replies(connection: Any) -> list[Any]:
        return [connection.read_response() for _ in commands]

    return _send(r, packed, replies)


def _send(r: redis.Redis, packed: bytes, replies: Callable[[Any], list[Any]]) -> list[Any]:
    pool = r.connection_pool
    connection = pool.get_connection()
    try:

        def run() -> list[Any]:
            connection.send_packed_command([packed])
            try:
                answers = replies(connection)
            except BaseException:
                # Replies may be left unread: never hand this connection out again as is.
                connection.disconnect()
                raise
            for answer in answers:  # a command that failed (inside a transaction)
                if isinstance(answer, redis.ResponseError):
                    raise answer
            return answers

        return connection.retry.call_with_retry(run, lambda _error: connection.disconnect())
    finally:
        pool.release(connection)
