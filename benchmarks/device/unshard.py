"""Join the GPU recipe's sharded weights into one safetensors file, as the package ships them.

    python benchmarks/device/unshard.py RESULTS/model.safetensors.index.json OUT.safetensors [--name NAME]

The tensors and the index's metadata (normalisation, backbone options, shape, steps) are
kept; ``--name`` replaces the recorded name. The result loads wherever the index did.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index", type=Path, help="model.safetensors.index.json (or its folder)")
    parser.add_argument("out", type=Path, help="the single .safetensors file to write")
    parser.add_argument("--name", default="", help="the name recorded in the metadata (default: kept)")
    args = parser.parse_args(argv)

    from safetensors.torch import save_file

    from fwi_plugins.atomic import atomic_path
    from fwi_plugins.errors import FWIError
    from fwi_plugins.weights import load_tensors, plain_tensors

    index = args.index / "model.safetensors.index.json" if args.index.is_dir() else args.index
    try:
        tensors, metadata = load_tensors(index)
    except FWIError as exc:
        print(f"unshard: error: {exc}", file=sys.stderr)
        return 1
    if args.name:
        metadata = {**metadata, "name": args.name}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out) as tmp:  # written whole or not at all
        save_file(plain_tensors(tensors), str(tmp), metadata=metadata)
    print(f"unshard: {len(tensors)} tensors from {index} -> {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
