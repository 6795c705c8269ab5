"""One call computed in a second process while this one goes on: the machines that build the atlas have two
cores, and the analysis and the render each have a part that needs nothing the rest of the stage makes.

The child is forked, so it starts with this process's memory (its arguments are not pickled) and sends back
only the result. Where fork is unavailable the call runs in this process when its result is asked for. A
call whose result depends only on its arguments gives the same bytes either way.
"""

from __future__ import annotations

import multiprocessing
from typing import Callable, TypeVar

from .errors import BuildError

T = TypeVar("T")


def start(call: Callable[[], T]) -> Callable[[], T]:
    """Start call() in a forked process; returns the function that waits for its result (or re-raises its
    exception). Ask for the result exactly once."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return call
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)

    def child() -> None:
        receive.close()  # the parent's end: with it closed here, a parent that died makes send() fail, not block
        try:
            outcome = (True, call())
        except BaseException as e:  # sent to the parent, which raises it
            outcome = (False, e)
        send.send(outcome)

    process = context.Process(target=child, daemon=True)
    process.start()
    send.close()

    def result() -> T:
        try:
            ok, value = receive.recv()  # before join: a large result fills the pipe until it is read
        except EOFError:
            ok, value = None, None
        finally:
            receive.close()
            process.join()
        if ok is None:
            raise BuildError(f"a background process ended without a result (exit code {process.exitcode})")
        if not ok:
            raise value
        return value

    return result
