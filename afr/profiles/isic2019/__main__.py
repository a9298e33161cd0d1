"""``python -m afr.profiles.isic2019 weights [--data-dir DIR] [--mirror URL]``: optional ImageNet weights."""

from __future__ import annotations

import argparse
import sys

from ...errors import DataError
from .fetch import fetch_weights

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m afr.profiles.isic2019", description="Optional downloads of the isic2019 profile."
    )
    parser.add_argument("what", choices=["weights"], help="weights: EfficientNet-B0 ImageNet checkpoint")
    parser.add_argument("--data-dir", default=None, help="default: $AFR_DATA_DIR or the user cache dir")
    parser.add_argument("--mirror", default=None, help="base URL laid out as <mirror>/isic2019/<file>")
    args = parser.parse_args(argv)
    try:
        print(fetch_weights(args.data_dir, mirror=args.mirror))
    except DataError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
