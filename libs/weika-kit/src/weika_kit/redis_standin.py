"""The embedded stand-in for Redis (make run without REDIS_URL): fakeredis speaking RESP on a loopback port."""

from __future__ import annotations

import argparse
import logging

from fakeredis import TcpFakeServer

log = logging.getLogger(__name__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = TcpFakeServer((args.host, args.port), server_type="redis")
    server.daemon_threads = True
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
