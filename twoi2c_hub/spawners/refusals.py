"""An expected refusal is one WARNING line in the hub's log, not ERRORs and a traceback.

JupyterHub treats a `SpawnException` as a policy refusal ("no traceback should be
logged"), and `User.spawn` logs it as one ERROR line: "Not starting bob's server :
<message>". It is then logged again: from the spawn form as "Error starting server bob:
<message>" (ERROR) and "Failed to spawn single-user server with form" (ERROR, with the
traceback); from the REST API by tornado ("403 POST ...: <message>"). This filter, put on
the hub's loggers by `configure()`, makes the first a WARNING and drops the echoes of a
message it has just seen; a refusal raised before the spawn starts (by the form itself)
becomes one WARNING line instead. Every other record passes unchanged.
"""

from __future__ import annotations

import logging
import time

from jupyterhub.spawner import SpawnException

NOT_STARTING = "Not starting "
FORM_FAILURE = "Failed to spawn single-user server with form"
ECHO_SECONDS = 60.0


class RefusalLogFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self._said: dict[str, float] = {}  # refusal message -> when User.spawn logged it

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.msg, str):
            return True
        if record.msg.startswith(NOT_STARTING) and record.levelno > logging.WARNING:
            _warning(record)
            text = record.getMessage()
            self._remember(text[text.find(": ") + 2 :] if ": " in text else text)
            return True
        if self._said and record.levelno >= logging.WARNING and not record.exc_info:
            text = record.getMessage()  # "Error starting server bob: <m>", tornado's "403 POST ...: <m>"
            if any(text.endswith(said) for said in self._said if self._echo(said)):
                return False
        if record.msg == FORM_FAILURE and record.exc_info and isinstance(record.exc_info[1], SpawnException):
            text = str(record.exc_info[1])
            if self._echo(text):
                return False
            record.msg, record.args = "Refused a server from the spawn form: %s", (text,)
            record.exc_info = record.exc_text = None
            _warning(record)
        return True

    def _remember(self, message: str) -> None:
        now = time.monotonic()
        self._said = {m: at for m, at in self._said.items() if now - at < ECHO_SECONDS}  # bounded by time
        self._said[message] = now

    def _echo(self, message: str) -> bool:
        at = self._said.get(message)
        return at is not None and time.monotonic() - at < ECHO_SECONDS


def _warning(record: logging.LogRecord) -> None:
    record.levelno, record.levelname = logging.WARNING, "WARNING"


# the hub's handlers log to its application logger, `User.spawn` and HTTP errors to tornado's
LOGGERS = ("JupyterHub", "tornado.application", "tornado.general")


def install() -> None:
    """One filter on the hub's loggers (a config loaded twice adds it once)."""
    loggers = [logging.getLogger(name) for name in LOGGERS]
    if any(isinstance(f, RefusalLogFilter) for logger in loggers for f in logger.filters):
        return
    shared = RefusalLogFilter()  # one memory of what User.spawn said, for the form's record
    for logger in loggers:
        logger.addFilter(shared)
