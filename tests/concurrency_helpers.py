"""Running the same work from several threads released at the same moment (concurrency tests)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def at_once(count: int, work: Callable[[int], T]) -> list[T]:
    """``work(0)`` … ``work(count - 1)``, each in its own thread, all released together by a barrier;
    their results in the order of ``n``. An exception in any thread is raised here, after all ended."""
    start = threading.Barrier(count)
    results: dict[int, T] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(n: int) -> None:
        start.wait()
        try:
            result = work(n)
        except BaseException as error:
            with lock:
                errors.append(error)
            return
        with lock:
            results[n] = result

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return [results[n] for n in range(count)]
