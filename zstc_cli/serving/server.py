"""Running the app: the listening socket opened first, uvicorn with its logs on stderr, and a load failure
stopping the server and raised once it has stopped."""

from __future__ import annotations

import contextlib
import copy
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI

from zstc_cli.errors import ZstcError
from zstc_cli.scorers.base import Scorer
from zstc_cli.serving.app import create_app
from zstc_cli.serving.requests import ServeSettings

log = logging.getLogger("zstc.serve")


def log_config(quiet: bool) -> dict[str, Any]:
    """uvicorn's logging with access lines on stderr too (stdout is not for logs), plus zstc's logger."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    level = "WARNING" if quiet else "INFO"
    config["loggers"]["zstc"] = {"handlers": ["default"], "level": level, "propagate": False}
    return config


def bind(host: str, port: int) -> socket.socket:
    """Open the listening socket first, so a busy port is one clear error before any model loads."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise ZstcError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


@dataclass
class Endpoint:
    """A bound, not yet running server: :meth:`run` serves until stopped (``server.should_exit = True``)."""

    app: FastAPI
    server: uvicorn.Server
    sock: socket.socket

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def run(self) -> None:
        """Serve until interrupted; if the model cannot be loaded, the server stops and the error is raised."""
        log.info("listening on %s (OpenAPI docs at %s/docs)", self.url, self.url)
        # uvicorn shuts down gracefully on Ctrl-C, then raises it again: by then stopping is done, not an error.
        with self.sock, contextlib.suppress(KeyboardInterrupt):
            self.server.run(sockets=[self.sock])
        if self.app.state.load_error is not None:
            raise self.app.state.load_error


def endpoint(
    load: Callable[[], Scorer],
    settings: ServeSettings = ServeSettings(),
    host: str = "127.0.0.1",
    port: int = 8080,
    quiet: bool = False,
) -> Endpoint:
    """Bind ``host:port`` (0 picks a free port) and build the app and uvicorn server around ``load``."""
    sock = bind(host, port)
    server: uvicorn.Server

    def stop(_: BaseException) -> None:  # Endpoint.run raises the error once the server has stopped
        server.should_exit = True

    app = create_app(load, settings, on_load_error=stop)
    config = uvicorn.Config(
        app, log_config=log_config(quiet), log_level="warning" if quiet else "info", access_log=not quiet,
        timeout_graceful_shutdown=5,
    )  # fmt: skip
    server = uvicorn.Server(config)
    return Endpoint(app, server, sock)
