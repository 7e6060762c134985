"""`python -m bench [name ...]`: run the named benchmarks (default: all) one after the other."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("ingest", "fold", "junk", "console")


def main(argv: list[str]) -> int:
    for name in argv or list(BENCHMARKS):
        if name not in BENCHMARKS:
            print(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
            return 2
        print(f"== bench.{name} ==", flush=True)
        module = importlib.import_module(f"bench.{name}")
        code = int(module.main())
        if code:
            return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
