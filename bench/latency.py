"""A TCP proxy that adds network latency, to measure seqtui against a server that is not next door.

    proxy = DelayProxy("127.0.0.1", 5432, one_way_seconds=0.005).start()   # 10 ms round trips
    ... connect to 127.0.0.1:proxy.port ...
    proxy.stop()

`host` may be a Unix-socket directory (as libpq takes it): the proxy then reaches the server through
its socket there, `.s.PGSQL.<port>`. Bytes keep their order and are each held back `one_way_seconds` in each direction; nothing else (no
bandwidth limit, no loss). It runs its own asyncio loop in a thread of the benchmark's process.
"""

from __future__ import annotations

import asyncio
import threading
import time


class DelayProxy:
    def __init__(self, host: str, port: int, one_way_seconds: float) -> None:
        self.host, self.upstream_port, self.delay = host, port, one_way_seconds
        self.port: int | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="delay-proxy", daemon=True)

    def start(self) -> "DelayProxy":
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._client, "127.0.0.1", 0), self._loop).result()
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    async def _shutdown(self) -> None:
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.host.startswith("/"):
                up_reader, up_writer = await asyncio.open_unix_connection(
                    f"{self.host}/.s.PGSQL.{self.upstream_port}")
            else:
                up_reader, up_writer = await asyncio.open_connection(self.host, self.upstream_port)
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer),
                                 return_exceptions=True)
        except asyncio.CancelledError:  # stop(): the connection ends with the proxy
            up_writer.close()
            writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Forward what `reader` gets to `writer`, each chunk `delay` seconds after it arrived."""
        queue: asyncio.Queue = asyncio.Queue()

        async def deliver() -> None:
            while (item := await queue.get()) is not None:
                due, data = item
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
            writer.close()

        sender = asyncio.ensure_future(deliver())
        try:
            while data := await reader.read(65536):
                queue.put_nowait((time.monotonic() + self.delay, data))
        finally:
            queue.put_nowait(None)
            await sender
