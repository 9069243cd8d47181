"""A minimal real single-user server for load runs: what JupyterHub's spawner starts in
place of jupyter-server, so that hundreds fit on two cores. It listens where the hub
says (JUPYTERHUB_SERVICE_URL) and answers every request under its prefix with 200 and a
little JSON, as a server that is up does; it ignores its arguments (--allow-root, ...).
TINY_SERVER_DELAY: seconds it takes to boot before it listens (default 0)."""

import json
import os
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


def main() -> None:
    where = urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the http.server API)
            found = self.path.startswith(prefix)
            body = json.dumps({"version": "2.14.0", "server": "tiny"} if found else {"message": "not here"}).encode()
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # quiet: hundreds of these run at once
            pass

    time.sleep(float(os.environ.get("TINY_SERVER_DELAY", "0")))
    server = ThreadingHTTPServer((where.hostname or "127.0.0.1", where.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    server.serve_forever()


if __name__ == "__main__":
    main()
