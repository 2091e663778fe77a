"""A 2-D line of another geometry, from SEG-Y in to velocity SEG-Y out, with an unknown wavelet.

The recording is made here with Deepwave, as a field crew's would be: a 3 km line over a
1 km deep model at 10 m, 20 shots, a receiver every 10 m, 2 s at 4 ms, with a source the
processing does not know (12 Hz, turned 40 degrees in phase, 5,000 times the survey's
Ricker, plus 5 % noise). The survey states the usual 15 Hz Ricker. Then:

1. **zero-shot**: ``fwi predict`` with the shipped foundation, SEG-Y in (geometry from
   the trace headers), velocity SEG-Y out; ``fwi predict`` itself estimates the source
   wavelet and scale and shapes the gathers to the wavelet the network was trained on;
2. **label-free adaptation**: LoRA on the foundation, trained on the line's gathers (as
   the acquisition map shows them to the network) with the physics misfit alone, the
   source wavelet estimated at every comparison (``wavelet=estimate``);
3. **refinement**: ``fwi refine --wavelet estimate`` on the line's true geometry from the
   adapted prediction, written as velocity SEG-Y.

Figures: velocity.png (truth and each stage), wavelet.png (estimated against the true
source), refine/*.png. summary.json holds the numbers.

    python examples/field_line.py --out field_line            # the 3 km line (CPU: tens of minutes)
    python examples/field_line.py --size small --out /tmp/fl  # a 0.8 km line, a minute or two
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

SIZES = {
    # nz, nx at 10 m; shots; samples at 4 ms; adaptation steps; refinement iterations.
    "full": dict(nz=101, nx=301, shots=20, nt=500, steps=40, iterations=20),
    "small": dict(nz=30, nx=80, shots=6, nt=300, steps=3, iterations=4),
}
TRUE_PEAK_HZ, TRUE_PHASE_DEG, TRUE_DELAY_S, TRUE_SCALE, NOISE = 12.0, 40.0, 0.12, 5000.0, 0.05


def line_survey(nz: int, nx: int, shots: int, nt: int):
    from fwi_plugins.survey import Survey, evenly_spaced

    return Survey(nz=nz, nx=nx, dx=10.0, nt=nt, dt=0.004, sources=evenly_spaced(shots, nx),
                  receivers=tuple((0.0, float(x)) for x in range(nx)), peak_freq=15.0,
                  vmin=1500.0, vmax=4500.0)


def true_model(nz: int, nx: int, dx: float = 10.0, seed: int = 7) -> np.ndarray:
    """Layers under a gently curved, dipping top, with a faster lens: m/s, (1, 1, nz, nx)."""
    rng = np.random.default_rng(seed)
    z = np.arange(nz)[:, None] * dx
    x = np.arange(nx)[None, :] * dx
    width = nx * dx
    v = 1800.0 + 0.9 * z + 0.0 * x
    top = 0.25 * nz * dx + 0.08 * x + 40.0 * np.sin(2 * np.pi * x / width)
    base = 0.6 * nz * dx - 0.05 * x + 30.0 * np.cos(3 * np.pi * x / width)
    v = np.where(z > top, 2600.0 + 0.6 * (z - top), v)
    v = np.where(z > base, 3400.0 + 0.3 * (z - base), v)
    lens = ((x - 0.6 * width) / (0.12 * width)) ** 2 + ((z - 0.42 * nz * dx) / (0.07 * nz * dx)) ** 2 < 1
    v = np.where(lens, 3100.0, v) + rng.normal(0.0, 15.0, size=(nz, nx))
    return np.clip(v, 1600.0, 4300.0).astype(np.float32)[None, None]


def true_wavelet(times: np.ndarray) -> np.ndarray:
    from fwi_plugins.wavelet import phase_rotate, ricker

    return TRUE_SCALE * phase_rotate(ricker(times, TRUE_PEAK_HZ, TRUE_DELAY_S), TRUE_PHASE_DEG)


def record(velocity: np.ndarray, survey, wavelet: np.ndarray, seed: int = 0) -> np.ndarray:
    """Gathers (1, S, T, R) simulated with ``wavelet`` (not the survey's), plus noise."""
    import deepwave
    import torch

    s = survey
    out = deepwave.scalar(
        torch.from_numpy(velocity[0, 0]).expand(s.n_shots, -1, -1).contiguous(), s.dx, s.dt,
        source_amplitudes=torch.tensor(wavelet, dtype=torch.float32).view(1, 1, -1).repeat(s.n_shots, 1, 1),
        source_locations=torch.tensor(s.sources).long().view(-1, 1, 2),
        receiver_locations=torch.tensor(s.receivers).long().view(1, -1, 2).repeat(s.n_shots, 1, 1),
        accuracy=4, pml_width=s.pml_width, pml_freq=s.peak_freq, max_vel=s.vmax)
    data = out.receiver_amplitudes.transpose(1, 2)[None].numpy()
    rng = np.random.default_rng(seed)
    return (data + NOISE * data.std() * rng.standard_normal(data.shape)).astype(np.float32)


def fwi(*args: str) -> None:
    """Run an ``fwi`` command in this process; stop on failure with its message."""
    from fwi_plugins.cli import main

    try:
        main.main(list(args), standalone_mode=False)
    except SystemExit as exc:
        if exc.code:
            raise SystemExit(f"fwi {args[0]} failed (exit {exc.code})") from None


def adapt_label_free(gathers: np.ndarray, survey, *, steps: int, out: Path):
    """LoRA on the shipped foundation, trained on the physics misfit alone (no velocity).

    The network reads the line through the acquisition map (native windows); the physics
    term simulates each window on the native acquisition it stands for and compares it
    with the window after an estimated source wavelet.
    """
    from fwi_plugins import api
    from fwi_plugins.acquisition import AcquisitionMap, Grid, native_survey
    from fwi_plugins.engine.options import TrainOptions
    from fwi_plugins.engine.training.train import train
    from fwi_plugins.engine.training.data import TrainData
    from fwi_plugins.pretrained import config_of

    model = api.build_backbone("vit", pretrained="default")
    config = config_of(model)
    native = native_survey(config.shape)
    mapping = AcquisitionMap(survey, native, grid=Grid(nz=survey.nz, nx=survey.nx, dx=survey.dx))
    windows = mapping.gathers_to_native(gathers).astype(np.float32)
    # Each window records what the native acquisition would over the line's model stretched
    # by the map's scale (velocities unchanged), so the native survey simulates it.
    physics = api.build_physics("deepwave", {"wavelet": "estimate"}, survey=native)
    adapted = api.apply_peft(model, "lora", backbone="vit")
    options = TrainOptions(labels="none", lambda_physics=1.0, epochs=max(1, steps // max(1, len(windows))),
                           max_steps=steps, batch_size=2, physics_samples=0, lr=5e-4, select_best=False,
                           device="cpu", progress=False, warmup_epochs=0.0)
    result = train(adapted, TrainData(gathers=windows), None, options=options,
                   normalization=config.normalization, physics=physics, run_dir=out)
    velocity = mapping.velocity_to_user(
        api.predict(adapted, windows, normalization=config.normalization, progress=False))
    return np.clip(velocity, survey.vmin, survey.vmax), [h.get("train_physics_loss") for h in result.history]


def amplitude_gain(physics: Any, survey: Any, observed: np.ndarray) -> tuple[float, float]:
    """The recording's gain (with its polarity) and the fit of the wavelet it was told from.

    The gain of a wavelet estimated in a 1-D reference model brings the recording back to the
    scale the network was trained on.
    """
    from fwi_plugins.wavelet import estimate_wavelet

    depth = np.arange(survey.nz, dtype=np.float32)[:, None] * survey.dx
    reference = np.broadcast_to(1800.0 + 1.5 * depth, (1, 1, survey.nz, survey.nx)).astype(np.float32)
    first = estimate_wavelet(physics, reference, observed)
    ricker = survey.wavelet_samples()
    gain = float(np.linalg.norm(first.wavelet[0]) / np.linalg.norm(ricker))
    # Polarity: the sign of the strongest correlation at any lag (the delays differ).
    correlation = np.correlate(first.wavelet[0], ricker, mode="full")
    gain *= float(np.sign(correlation[np.argmax(np.abs(correlation))]) or 1.0)
    return gain, float(first.fit[0])


def summarise(gain: float, truth: np.ndarray, models: dict[str, np.ndarray], final: Any, wavelet: np.ndarray,
              physics_loss: list[Any]) -> dict[str, float]:
    """Each model's error against the truth, and how well the source wavelet was recovered."""
    from fwi_plugins import api

    summary: dict[str, float] = {"gain": gain}
    for name, model in models.items():
        scores = api.evaluate(model, truth)
        summary[f"{name}_mae_ms"], summary[f"{name}_ssim"] = float(scores["mae_ms"]), float(scores["ssim"])
    est = final.wavelet[0]
    summary["wavelet_correlation"] = float(np.dot(est, wavelet) / np.linalg.norm(est) / np.linalg.norm(wavelet))
    summary["wavelet_amplitude_ratio"] = float(np.linalg.norm(est) / np.linalg.norm(wavelet))
    summary["wavelet_fit"] = float(final.fit[0])
    summary["adapt_physics_loss_first"] = float(physics_loss[0]) if physics_loss and physics_loss[0] else float("nan")
    summary["adapt_physics_loss_last"] = float(physics_loss[-1]) if physics_loss and physics_loss[-1] else float("nan")
    return summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full",
                        help="full: the 3 km line; small: a 0.8 km line for a quick check")
    parser.add_argument("--out", type=Path, default=Path("field_line"), help="folder for every output")
    parser.add_argument("--steps", type=int, default=None, help="label-free adaptation steps")
    parser.add_argument("--iterations", type=int, default=None, help="refinement iterations")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    size = SIZES[args.size]
    steps = args.steps if args.steps is not None else size["steps"]
    iterations = args.iterations if args.iterations is not None else size["iterations"]

    from fwi_plugins import api
    from fwi_plugins.data.io import read_velocity, write_gathers, write_velocity
    from fwi_plugins.engine import figures
    from fwi_plugins.wavelet import estimate_wavelet, wavelet_figure

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    survey = line_survey(size["nz"], size["nx"], size["shots"], size["nt"])
    truth = true_model(survey.nz, survey.nx, survey.dx)
    wavelet = true_wavelet(survey.times())
    observed = record(truth, survey, wavelet)
    write_gathers(out / "line.sgy", observed, survey=survey, attrs={"generator": "examples/field_line.py"})
    print(f"recorded {out / 'line.sgy'}: {survey.n_shots} shots x {survey.n_receivers} receivers x "
          f"{survey.nt} samples at {survey.dt * 1000:g} ms; model {survey.nz} x {survey.nx} at {survey.dx:g} m")

    # Amplitude calibration for the label-free adaptation, which trains on the recording:
    # its scale is arbitrary, the network's input scale is not.
    physics = api.build_physics("deepwave", survey=survey)
    gain, fit = amplitude_gain(physics, survey, observed)
    write_gathers(out / "line_calibrated.sgy", observed / gain, survey=survey,
                  attrs={"generator": "examples/field_line.py", "gain": gain})
    print(f"estimated gain {gain:.4g} (true scale {TRUE_SCALE:g}); fit in the 1-D model {fit:.3f}")

    # 1. Zero-shot, SEG-Y in to velocity SEG-Y out: the recording as it is (fwi predict shapes it).
    fwi("predict", "--backbone", "vit", "--input", str(out / "line.sgy"),
        "--out", str(out / "zero_shot"), "--device", "cpu", "--quiet")
    zero_shot, _ = read_velocity(out / "zero_shot" / "velocity.sgy")

    # 2. Label-free adaptation.
    adapted, physics_loss = adapt_label_free(observed / gain, survey, steps=steps, out=out / "adapt")
    write_velocity(out / "adapted.sgy", adapted, dx=survey.dx, attrs={"stage": "label-free adaptation"})

    # 3. Refinement on the true geometry with an estimated wavelet, from the adapted prediction.
    write_velocity(out / "adapted.nc", adapted, dx=survey.dx, attrs={"stage": "label-free adaptation"})
    fwi("refine", "--initial", str(out / "adapted.nc"), "--observed", str(out / "line.sgy"),
        "--wavelet", "estimate", "--iterations", str(iterations), "--lr", "0.01", "--smooth", "1",
        "--device", "cpu", "--out", str(out / "refine"), "--no-progress")
    refined, _ = read_velocity(out / "refine" / "velocity.nc")
    write_velocity(out / "refined.sgy", refined, dx=survey.dx, attrs={"stage": "refined"})

    final = estimate_wavelet(physics, refined, observed)
    wavelet_figure(out / "wavelet.png", final, assumed=wavelet, title="estimated (refined model) vs true source")
    figures.velocity_comparison(out / "velocity.png", {"true": truth, "zero-shot": zero_shot, "adapted": adapted,
                                                       "refined": refined}, dx=survey.dx,
                                vmin=survey.vmin, vmax=survey.vmax, title="3 km line" if args.size == "full"
                                else "small line")
    summary = summarise(gain, truth, {"zero_shot": zero_shot, "adapted": adapted, "refined": refined}, final,
                        wavelet, physics_loss)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    for key, value in summary.items():
        print(f"{key:28s} {value:.4g}")
    return summary


if __name__ == "__main__":
    main()
