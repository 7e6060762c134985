"""`python -m bench [name ...]`: run the named benchmarks (default: all but the on-demand ones) one after the other.

`python -m bench NAME --option ...`: options after one benchmark's name are its own (`python -m bench fleet --help`).
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("ingest", "fold", "junk", "console", "dbcost")
ON_DEMAND = ("fleet",)
"""Run only when named: `fleet` loads the machine for its --duration (10 minutes by default)."""


def main(argv: list[str]) -> int:
    split = next((i for i, arg in enumerate(argv) if arg.startswith("-")), len(argv))
    names, options = argv[:split], argv[split:]
    if options and len(names) != 1:
        print("options follow the name of one benchmark: python -m bench NAME --option ...", file=sys.stderr)
        return 2
    for name in names or list(BENCHMARKS):
        if name not in BENCHMARKS + ON_DEMAND:
            print(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS + ON_DEMAND)}", file=sys.stderr)
            return 2
        print(f"== bench.{name} ==", flush=True)
        module = importlib.import_module(f"bench.{name}")
        code = int(module.main(options) if options else module.main())
        if code:
            return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
