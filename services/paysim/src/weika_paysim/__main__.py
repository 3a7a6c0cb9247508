"""Run the payment simulator: `weika-paysim` (WEIKA_PAYSIM_HOST, WEIKA_PAYSIM_PORT, WEIKA_PAYSIM_KEY_DIR)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from waitress import serve

from weika_paysim.app import create_app
from weika_paysim.simulator import Simulator


def main() -> None:
    logging.basicConfig(level=os.environ.get("WEIKA_LOG_LEVEL", "INFO"))
    var_dir = Path(os.environ.get("WEIKA_VAR_DIR", "var"))
    key_dir = Path(os.environ.get("WEIKA_PAYSIM_KEY_DIR", str(var_dir / "paysim")))
    host = os.environ.get("WEIKA_PAYSIM_HOST", "127.0.0.1")
    port = int(os.environ.get("WEIKA_PAYSIM_PORT", "8090"))
    serve(create_app(Simulator.from_key_dir(key_dir)), host=host, port=port, threads=8)


if __name__ == "__main__":
    main()
