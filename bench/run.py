"""Entry point of `make bench`: `.venv/bin/python bench/run.py [--quick] [--only W1,W3] [--duration S]`.

Needs wrk (Debian: `apt-get install wrk`). See docs/performance.md for what it measures and the last results.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.main import main

    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        sys.stderr.write("bench: interrupted; everything it started has been stopped\n")
        raise SystemExit(130) from None
