"""Background work for the UI: a small process-wide thread pool, futures keyed by what they compute,
and the numba warm-up started once when the app starts. Workers never call Streamlit."""
from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Hashable

import streamlit as st

log = logging.getLogger(__name__)
WORKERS = 2  # a UMAP map and a scorecard may run side by side; more would only fight over 2 cores


@st.cache_resource(show_spinner=False)
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="studio-bg")


@st.cache_resource(show_spinner=False)
def _futures() -> tuple[threading.Lock, dict[Hashable, Future]]:
    return threading.Lock(), {}


def submit(key: Hashable, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
    """The future computing ``fn(*args, **kwargs)`` for ``key``: started once, shared by every session.

    A failed computation is forgotten, so asking again retries it.
    """
    lock, futures = _futures()
    with lock:
        future = futures.get(key)
        if future is not None and not (future.done() and future.exception() is not None):
            return future
        future = _executor().submit(fn, *args, **kwargs)
        futures[key] = future
        return future


def error_message(future: Future) -> str | None:
    """A one-line message for a failed future (bad input says what; anything else is logged in full)."""
    exc = future.exception()
    if exc is None:
        return None
    from engine.errors import UserError

    if isinstance(exc, UserError):
        return str(exc)
    log.error("background task failed", exc_info=exc)
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'unexpected error'}"


@st.cache_resource(show_spinner=False)
def start_numba_warm_up() -> threading.Thread | None:
    """Compile UMAP's numba kernels in the background once per server process, so the first map is fast.

    OCSF_STUDIO_NO_WARMUP=1 turns it off (the AppTests, which never draw a UMAP map, use it).
    """
    if os.environ.get("OCSF_STUDIO_NO_WARMUP") == "1":
        return None
    from engine.project import warm_up_numba

    thread = threading.Thread(target=warm_up_numba, name="numba-warm-up", daemon=True)
    thread.start()
    return thread
