"""Small asyncio helpers shared by the services."""

from __future__ import annotations

import asyncio
import contextlib

CANCEL_POLL_S = 0.05


async def cancel_and_wait(*tasks: asyncio.Task[object]) -> None:
    """Cancel tasks and wait until they are done.

    Cancels again until each task has ended: on Python 3.11, ``asyncio.wait_for`` (used inside
    aiomqtt's publish) can swallow a cancellation that races with its result, and a loop
    around such a call would then never end.
    """
    for task in tasks:
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=CANCEL_POLL_S)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            task.result()
