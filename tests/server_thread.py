"""Test support: a real (waitress) HTTP server for a WSGI app, on a background thread."""

import threading


class ServerThread:
    """Runs an app on a real waitress server in a background thread.

    Port 0 picks a free port (see .port).
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, threads: int = 4):
        import waitress

        self.server = waitress.create_server(app, host=host, port=port, threads=threads)
        self.host = host
        self.port = self.server.effective_port
        self._thread = threading.Thread(target=self.server.run, name="waitress", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "ServerThread":
        self._thread.start()
        return self

    def stop(self) -> None:
        # Closing every dispatcher empties the asyncore map, which ends run().
        # It must happen in the loop's own thread (closing sockets under a
        # running select() races), which is what the trigger's thunks are for.
        def close_all():
            for dispatcher in list(self.server._map.values()):
                dispatcher.close()

        if self._thread.is_alive():
            try:
                self.server.trigger.pull_trigger(close_all)
            except OSError:
                # The loop already closed its trigger (it is ending on its own): nothing to wake.
                pass
            self._thread.join(timeout=10)
        else:
            close_all()
        self.server.task_dispatcher.shutdown()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
