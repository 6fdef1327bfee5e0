"""Write the dashboards' JSON (`make dashboards`), or check it is up to date (`--check`).

python -m dashboards.generate          # rewrite dashboards/json/*.json
python -m dashboards.generate --check  # exit 1 if a committed file differs
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards import carbon_accounts, operations

__all__ = ["DASHBOARDS", "JSON_DIR", "main", "render", "stale"]

JSON_DIR = Path(__file__).parent / "json"

#: file name (without .json) -> builder function
DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    "operations": operations.build,
    "carbon_accounts": carbon_accounts.build,
}


def render(name: str) -> str:
    """The JSON text of one dashboard, as committed (sorted keys, 2-space indent)."""
    built = DASHBOARDS[name]().build()
    # Grafana keys panel state by id: give every panel and row a distinct one
    for number, panel in enumerate(built.panels or [], start=1):
        panel.id_val = number
    return json.dumps(built, cls=JSONEncoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def stale(out_dir: Path = JSON_DIR) -> list[str]:
    """Names of the dashboards whose file in `out_dir` is missing or differs."""
    return [
        name
        for name in DASHBOARDS
        if not (out_dir / f"{name}.json").exists()
        or (out_dir / f"{name}.json").read_text() != render(name)
    ]


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, verify) every dashboard's JSON."""
    parser = argparse.ArgumentParser(prog="python -m dashboards.generate")
    parser.add_argument("--check", action="store_true", help="fail if a JSON file is stale")
    parser.add_argument("--out", type=Path, default=JSON_DIR, help="output folder")
    args = parser.parse_args(argv)
    if args.check:
        names = stale(args.out)
        for name in names:
            print(f"stale: {args.out / name}.json (run `make dashboards`)", file=sys.stderr)
        return 1 if names else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name in DASHBOARDS:
        path = args.out / f"{name}.json"
        path.write_text(render(name))
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
