"""Several LoRA adapters on one frozen foundation backbone: save, reload, switch, merge.

    python examples/lora_adapters.py --out /tmp/adapters
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from fwi_plugins import api
from fwi_plugins.adapted import (add_adapter, count_parameters, load_adapted, merge_and_unload, save_adapted,
                                 set_adapter)
from fwi_plugins.specs import IOShape

SHAPE = IOShape(shots=5, time=200, receivers=32, depth=32, width=32)
TINY = {"size": "tiny", "dim": 64, "depth": 2, "heads": 4, "decoder_dim": 16}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("adapters"), help="where the adapter folder goes")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    model = api.apply_peft(api.build_backbone("vit", TINY, shape=SHAPE), "lora", {"r": 4}, backbone="vit")
    trainable, total = count_parameters(model)
    print(f"lora trains {trainable:,} of {total:,} parameters ({100 * trainable / total:.2f}%)")

    add_adapter(model, "salt")          # a second adapter, for another geology
    set_adapter(model, "salt")
    with torch.no_grad():                # pretend it was trained: nudge its weights
        for name, p in model.named_parameters():
            if "lora_B" in name and "salt" in name:
                p.add_(0.01)
    x = torch.randn(1, SHAPE.shots, SHAPE.time, SHAPE.receivers)
    salt_out = model(x)

    folder = save_adapted(model, args.out)
    print(f"saved adapters to {folder}: {sorted(p.name for p in Path(folder).rglob('*') if p.is_file())}")

    torch.manual_seed(0)  # the same base weights (in practice: the foundation's pretrained weights)
    fresh = api.build_backbone("vit", TINY, shape=SHAPE)
    reloaded = load_adapted(fresh, folder)
    set_adapter(reloaded, "salt")
    merged = merge_and_unload(reloaded)
    print(f"merged model matches the adapted one: {torch.allclose(merged(x), salt_out, atol=1e-5)}")


if __name__ == "__main__":
    main()
