"""The study report's shared pieces: published reference figures, labels, number formats, tables, runs by key."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

# OpenFWI (Deng et al., NeurIPS 2022), InversionNet with L1 loss on the full data: 24,000
# training maps per Vel family, evaluated on 6,000 test maps. MAE / RMSE on [-1, 1], SSIM.
INVERSIONNET = {
    "openfwi-flatvel-a": {"mae": 0.0131, "rmse": 0.0211, "ssim": 0.9895},
    "openfwi-curvevel-a": {"mae": 0.0685, "rmse": 0.1273, "ssim": 0.8074},
}
OPENFWI_TRAIN_MAPS = 24_000
OPENFWI_TEST_MAPS = 6_000

README_START = "<!-- results:start -->"
README_END = "<!-- results:end -->"

METHOD_LABELS = {"scratch": "from scratch", "full": "full fine-tuning", "lora": "LoRA", "adapter": "adapter",
                 "ia3": "IA3", "loha": "LoHa", "lokr": "LoKr", "foundation": "zero-shot (foundation)"}


def ssim_term(settings: dict) -> str:
    weight = settings.get("lambda_ssim", 0.0)
    return f" + {weight:g} x (1 - SSIM)" if weight else ""


def method_label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def pct(fraction: float) -> str:
    return f"{100 * fraction:g} %"


def fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def params_text(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.2f} M"
    if n >= 1_000:
        return f"{n / 1e3:.1f} k"
    return str(n)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def maps_text(n: int) -> str:
    return plural(n, "map")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    marks = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def plain_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    out = []
    for j, row in enumerate(cells):
        out.append("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)))
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return out



# -- gathering ----------------------------------------------------------------------------------
class Results:
    """Lookup of finished runs by (kind, target, method, fraction)."""

    def __init__(self, results: Mapping[str, Mapping[str, Any]]) -> None:
        self.by_key = dict(results)

    def get(self, kind: str, target: str, method: str = "", fraction: float = 1.0) -> Mapping[str, Any] | None:
        return self.by_key.get(f"{kind}:{target}:{method}:{fraction:g}")

    def grid(self, target: str, method: str, fraction: float) -> Mapping[str, Any] | None:
        return self.get("grid", target, method, fraction)

    def zero_shot(self, target: str) -> Mapping[str, Any] | None:
        return self.get("zero-shot", target)



def foundation_json(f: Mapping[str, Any]) -> dict[str, Any]:
    card = f.get("card") or {}
    keep = ("name", "command", "seed", "steps", "epochs", "wall_time_s", "hardware", "parameters",
            "validation", "validation_by_dataset", "data")
    return {"path": f["path"], "backbone": f["backbone"], "backbone_options": f["backbone_options"],
            "card": {k: card[k] for k in keep if k in card}}



def capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def example_fraction(report: Mapping[str, Any]) -> float:
    fractions = report["fractions"]
    return 0.1 if any(math.isclose(f, 0.1) for f in fractions) else fractions[0]

