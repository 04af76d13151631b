"""A process that spends wrong pairing tries as soon as it is told to (tests/test_pairing.py races
many of them against one code). Run as `python tests/pairing_race.py CONFIG_DIR GO_FILE TRIES`."""

from __future__ import annotations

import sys
import time
from pathlib import Path

try:
    from medlens.pairing import redeem
except ImportError:  # the code before pairing left serve/ (to reproduce the race on it)
    from medlens.serve.pairing import redeem  # type: ignore[no-redef]


def main() -> None:
    config, go, tries = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    while not go.exists():
        time.sleep(0.001)
    for _ in range(tries):
        error = redeem(config, "0000-0000")
        print(error.message if error is not None else "paired", flush=True)


if __name__ == "__main__":
    main()
