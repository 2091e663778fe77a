"""The study's report as Markdown (study.md) and as terminal text; the numbers come from ``study.json``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

RESULT_HEADER = ["method", "maps", "trainable", "lr", "SSIM", "MAE (m/s)", "gap closed"]


def pm(sp: Mapping[str, Any] | None, digits: int) -> str:
    """``mean ± sd`` (the mean alone for one value)."""
    if not sp or sp["mean"] is None:
        return "–"
    mean = f"{sp['mean']:.{digits}f}"
    return mean if sp["sd"] is None else f"{mean} ± {sp['sd']:.{digits}f}"


def share(row: Mapping[str, Any]) -> str:
    n = row["trainable"]
    count = f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.1f} k" if n >= 1e3 else str(n)
    return f"{count} ({100 * row['trainable_share']:.1f} %)"


def _gap(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f} %"


def result_rows(r: Mapping[str, Any]) -> list[list[str]]:
    """Zero-shot, every method at every fraction, and the specialist, for one target."""
    rows = []
    if r["zero_shot"]:
        z = r["zero_shot"]
        rows.append(["zero-shot", "0", share(z), "–", pm(z["ssim"], 4), pm(z["mae_ms"], 0), "0 %"])
    for method, fractions in r["methods"].items():
        for row in fractions.values():
            rows.append([method, str(row["maps"]), share(row), f"{row['lr']:g}", pm(row["ssim"], 4),
                         pm(row["mae_ms"], 0), _gap(row["gap_closed"])])
    if r["specialist"]:
        s = r["specialist"]
        rows.append([f"specialist (scratch, stopped at {s['steps']})", str(s["maps"]), share(s), f"{s['lr']:g}",
                     pm(s["ssim"], 4), pm(s["mae_ms"], 0), "100 %"])
    return rows


def tuning_rows(tuning: Mapping[str, Any], bold: bool) -> tuple[list[str], list[list[str]]]:
    lrs = sorted({row["lr"] for t in tuning.values() for row in t["grid"]})
    rows = []
    for method, t in tuning.items():
        cells = {row["lr"]: f"{row['val_ssim']:.4f}" for row in t["grid"]}
        if t["chosen"] is not None and bold:
            cells[t["chosen"]] = f"**{cells[t['chosen']]}**"
        rows.append([method, *[cells.get(lr, "") for lr in lrs], "–" if t["chosen"] is None else f"{t['chosen']:g}"])
    return ["method", *[f"lr {lr:g}" for lr in lrs], "chosen"], rows


def curve_rows(curves: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    maps = sorted({p["maps"] for c in curves.values() for p in c["points"]})
    rows = []
    for method, c in curves.items():
        cells = {p["maps"]: pm({"mean": p["ssim"], "sd": p["sd"]}, 4) for p in c["points"]}
        stop = "more maps still pay" if c["still_paying_off_at_most_maps"] else str(c["stops_paying_off_at"])
        rows.append([method, *[cells.get(n, "") for n in maps], stop])
    return ["method", *[f"{n} maps" for n in maps], "stops paying off at"], rows


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    align = ["---"] + ["---:"] * (len(header) - 1)
    return ["| " + " | ".join(r) + " |" for r in (header, align, *rows)]


def plain_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    return ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in (header, *rows)]


def markdown(j: Mapping[str, Any]) -> str:
    o, lines = j["options"], ["# Study: which way of adapting the foundation wins", ""]
    lines += [f"Command: `{j['command']}`", "",
              f"Foundation: `{j['foundation']['backbone']}` weights `{j['foundation']['weights']}` "
              f"(sha256 `{j['foundation']['sha256'][:16]}`); {len(j['tasks'])} runs, "
              f"{j['wall_time_s'] / 60:.1f} min of wall time in {j['sessions']} session(s) on "
              f"{j['hardware']['cpu']}.", ""]
    if o["smoke"]:
        lines += ["**Smoke run**: random weights, a few maps and steps; these numbers mean nothing.", ""]
    lines += _protocol(o)
    for key, r in j["results"].items():
        label = j["targets"][key]["label"]
        lines += [f"## {label}", "", f"Test SSIM and MAE, mean ± sd over seeds {', '.join(map(str, o['seeds']))}; "
                  "gap closed: the share of the zero-shot → specialist SSIM gap.", ""]
        lines += markdown_table(RESULT_HEADER, result_rows(r)) + [""]
        header, rows = tuning_rows(j["chosen_lr"][key], True)
        lines += ["Validation SSIM per learning rate (bold: chosen):", ""] + markdown_table(header, rows) + [""]
        if any(len(c["points"]) > 1 for c in r["data_curve"].values()):
            header, rows = curve_rows(r["data_curve"])
            lines += ["Data curve (test SSIM against training maps):", ""] + markdown_table(header, rows) + [""]
    lines += ["## Findings", ""] + [f"* {x}." for x in j["findings"]] + [""]
    if j["missing"]:
        lines += ["## Runs without a result", ""] + [f"* `{k}`" for k in j["missing"]] + [""]
    lines += ["Figures: `study_ssim_share.png` (SSIM against trainable share), `study_data_curve.png` "
              "(SSIM against training maps). Every run's record: `study.json` and `tasks/`."]
    return "\n".join(lines) + "\n"


def _protocol(o: Mapping[str, Any]) -> list[str]:
    grids = f"scratch and full {', '.join(map(str, o['lr_whole']))}; PEFT {', '.join(map(str, o['lr_peft']))}"
    lines = ["## Protocol", "",
             f"* {o['n_train']} training, {o['n_val']} validation and {o['n_test']} test maps per target "
             f"(data seed {o['data_seed']}); fractions {', '.join(map(str, o['fractions']))} of the training maps.",
             f"* Learning rate per method chosen on validation SSIM ({grids}), seed {o['seeds'][0]}, "
             f"{o['steps']} steps of {o['batch_size']} maps, loss L1 + {o['lambda_ssim']:g} x (1 - SSIM).",
             f"* Scratch: to convergence (at most {o['scratch_cap']} steps, stopped after {o['patience']} "
             "validations without a better SSIM; the best validation's weights are scored).",
             f"* Specialist: scratch on {o['specialist_maps']} target maps, at most {o['specialist_cap']} steps, "
             "the same early stopping, first seed." if o["specialist_maps"] else "* No specialist.", ""]
    return lines


def terminal(j: Mapping[str, Any]) -> str:
    lines: list[str] = []
    for key, r in j["results"].items():
        lines += ["", f"{j['targets'][key]['label']}: test, mean ± sd over seeds"]
        lines += plain_table(RESULT_HEADER, result_rows(r))
    lines += [""] + [f"* {x}" for x in j["findings"]]
    return "\n".join(lines)
