"""One thread that runs a SQLite connection's calls in order, awaited from the event loop.

What ``loop.run_in_executor`` on a one-thread ``ThreadPoolExecutor`` did, without concurrent.futures: its
Future (a lock and a condition each), the work item, the executor's locks and the chaining of that Future to
an asyncio one cost about 20 µs of CPU a call against some 8 here, and a run makes about 40 store calls
(issue 16, sixth pass: CPU per run). The same contract: calls run one at a time in the order made, on a thread
of their own (named as the executor named it); a call whose caller was cancelled before it started is not run,
one already running finishes and its result is dropped; once shut down, every later call raises LaneClosed (a
RuntimeError, as the executor's was): the lane's own signal, which the store alone reads as "closed".
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class _Call(Generic[T]):
    __slots__ = ("fn", "future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[T], fn: Callable[[], T]) -> None:
        self.loop, self.future, self.fn = loop, future, fn


class LaneClosed(RuntimeError):
    """The lane was shut down before the call was made: the one RuntimeError that means its store is closed. One from
    starting the thread is not (the store reads it as an outage), and one a call raises is that error itself."""


class Lane:
    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: queue.SimpleQueue[_Call[Any] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # a call is never queued behind the sentinel that ends the thread
        self._thread: threading.Thread | None = None
        self._closed = False

    def run(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """``fn()`` on the lane's thread, as a future of the running loop; LaneClosed once shut down."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._closed:
                raise LaneClosed(f"lane {self.name} is shut down")
            if self._thread is None or not self._thread.is_alive():  # started by the first call, as the executor
                # started its thread, and again if it could not start or has died: a call is never queued where
                # no thread will read it (found by attack: a failed start left every later call waiting forever).
                # A daemon: a store never closed does not hold the process open at exit (its calls were awaited
                # by a loop that is gone by then, and SQLite's journal undoes a transaction cut short).
                thread = threading.Thread(target=self._work, name=f"{self.name}_0", daemon=True)
                thread.start()
                self._thread = thread
            self._queue.put(_Call(loop, future, fn))
        return future

    def shutdown(self) -> None:
        """Run what is queued, then end the thread and wait for it; later calls raise LaneClosed."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            self._queue.put(None)
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _work(self) -> None:
        while (call := self._queue.get()) is not None:
            if call.future.cancelled():  # its caller gave up before it started: not run
                del call  # nor kept alive (with what its closure holds) while the lane waits for the next
                continue
            try:
                outcome: tuple[Any, BaseException | None] = (call.fn(), None)
            except StopIteration as exc:  # a future cannot hold one: its caller would wait forever
                outcome = (None, _Raised(f"a store call raised {exc!r}"))
                outcome[1].__cause__ = exc  # type: ignore[union-attr]
            except BaseException as exc:  # handed to the caller, as the executor's future did
                outcome = (None, exc)
            try:
                call.loop.call_soon_threadsafe(_settle, call.future, *outcome)
            except RuntimeError:  # the caller's loop is closed: nobody is waiting for it
                pass
            # Held no longer than the executor held its work item: an error's traceback keeps the call's frames
            # (and what they opened on the connection) alive until the next call would replace it.
            del call, outcome


class _Raised(Exception):
    """What a store call raised that a future cannot carry (StopIteration)."""


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.cancelled():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
