"""Many commands in one MULTI/EXEC, packed by hiredis: for bulk writes such as an import's
chunk (a thousand people's hashes), where redis-py's pipeline spends more time encoding
each argument and handling each reply than Redis spends on the commands themselves.

The commands go out in one write and come back as one EXEC reply; the connection's own
retry (``infra/redis_connect.py``) repeats the whole transaction on a lost connection,
which is safe for writes that set values (HSET, ZADD NX, HDEL), as bulk writes here do.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    pool = r.connection_pool
    connection = pool.get_connection()
    try:

        def run() -> list[Any]:
            connection.send_packed_command([packed])
            try:
                for _ in range(len(commands) + 1):  # +OK, then +QUEUED each
                    connection.read_response()
                replies = connection.read_response()
            except BaseException:
                # Replies may be left unread: never hand this connection out again as is.
                connection.disconnect()
                raise
            for reply in replies:  # a command that failed inside the transaction
                if isinstance(reply, redis.ResponseError):
                    raise reply
            return list(replies)

        return connection.retry.call_with_retry(run, lambda _error: connection.disconnect())
    finally:
        pool.release(connection)
