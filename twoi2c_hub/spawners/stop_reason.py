"""Who stopped a server, found where JupyterHub offers no hook to ask.

JupyterHub calls `Spawner.stop()` without saying who asked for it. A stop asked for
through the hub (the person's own button, an admin, the idle culler's API call) runs
inside `BaseHandler.stop_single_user`, whose inner `stop()` coroutine holds the request
handler (`self`); a stop with no handler on the stack is the hub's own (shutdown,
a failed poll). So the handler is found by walking up the stack.

This is the one place that relies on that. `tests/test_upstream_contracts.py` fails
when `stop_single_user` changes upstream, and the end-to-end tests check the recorded
reasons ("user", "admin", "crash") on a real hub.
"""

from __future__ import annotations

import inspect

from tornado.web import RequestHandler

# frames to look through: the handler is a handful of awaits above Spawner.stop
MAX_FRAMES = 60


def stop_reason(owner: str) -> str:
    """ "user" (the owner stopped it), "admin", "culler", "budget" (the cost service), or
    "hub" (no request)."""
    frame = inspect.currentframe()
    try:
        for _ in range(MAX_FRAMES):
            frame = frame.f_back
            if frame is None:
                break
            handler = frame.f_locals.get("self")
            if isinstance(handler, RequestHandler):
                who = getattr(handler, "current_user", None)
                if getattr(who, "kind", "user") == "service":
                    if who.name == "cost":  # past a budget's stop threshold
                        return "budget"
                    return "culler" if "cull" in who.name else "admin"
                if who is not None and who.name == owner:
                    return "user"
                return "admin"
    finally:
        del frame
    return "hub"
