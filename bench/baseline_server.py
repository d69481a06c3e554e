"""Run one of bench/baseline_app.py's apps under the service's own gunicorn settings (cli.gunicorn_options)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from gunicorn.app.base import BaseApplication

    from bench.baseline_app import APPS
    from cds_service.server import gunicorn_options

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--parser", choices=sorted(APPS), default="flask")
    args = parser.parse_args()
    app = APPS[args.parser]
    options = gunicorn_options(args.host, args.port, args.workers, args.threads)

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return app

    Server().run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
