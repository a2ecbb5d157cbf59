"""Running the app under uvicorn with a shutdown that stops the GPU job first.

uvicorn waits for open requests before the app's shutdown hook runs; an SSE stream or an OpenAI
call waiting on a long job would hold it. So on Ctrl-C/SIGTERM we cancel the queued and running
jobs first: their streams end, their waiters answer, and nothing half-written is left.
"""

from __future__ import annotations

import uvicorn

from .. import defaults


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app):
        super().__init__(config)
        self.zturbo_app = app

    def stop(self) -> None:
        self.zturbo_app.state.jobs.begin_shutdown()
        self.should_exit = True

    def handle_exit(self, sig, frame) -> None:
        self.zturbo_app.state.jobs.begin_shutdown()
        super().handle_exit(sig, frame)


def make_server(app, host: str, port: int, log_level: str = "info") -> Server:
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                            timeout_graceful_shutdown=int(defaults.SERVER_SHUTDOWN_GRACE_S),
                            proxy_headers=False, server_header=False)
    return Server(config, app)
