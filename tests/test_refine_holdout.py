"""Held-out shots decide what refinement returns: which shots, what they see, and which model each map gets.

The stand-in linear physics (a random linear map per shot) makes the choice of iterate exact
to check; the deepwave cases check the rule on the wave equation: a start that is the true
model is returned unchanged and flagged, a smoothed truth is refined.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from fwi_plugins import api
from fwi_plugins.engine.refinement.filters import gaussian_blur
from fwi_plugins.engine.refinement.refine import refine
from fwi_plugins.engine.refinement.holdout import holdout_shots
from fwi_plugins.errors import OptionError
from fwi_plugins.survey import Survey
from fwi_plugins.testing import LinearPhysics

torch.set_num_threads(1)

LINEAR_SURVEY = Survey.small(nz=8, nx=8, nt=64, n_sources=3, dt=0.004)
WAVE_SURVEY = Survey.small(nz=16, nx=20, nt=160, n_sources=5)
RAW = {"mute": 0, "smooth": 0.0, "depth_power": 0.0, "tv": 0.0}


def _linear_problem(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, LinearPhysics]:
    rng = np.random.default_rng(seed)
    truth = rng.uniform(2000, 4000, size=(1, 1, 8, 8)).astype(np.float32)
    start = (truth + rng.normal(0, 300, truth.shape)).astype(np.float32)
    physics = LinearPhysics(LINEAR_SURVEY)
    with torch.no_grad():
        observed = physics.simulate(torch.from_numpy(truth)).numpy()
    return truth, start, observed, physics


def _layered(n: int) -> np.ndarray:
    truth = np.full((n, 1, WAVE_SURVEY.nz, WAVE_SURVEY.nx), 2000.0, np.float32)
    truth[:, :, 6:] = 2500.0
    truth[:, :, 11:, 6:14] = 3000.0
    return truth


@pytest.mark.parametrize(("n_shots", "holdout", "expected"),
                         [(5, None, []), (5, 1, [1]), (5, 2, [1, 3]), (5, 0, []), (3, 1, [1]), (2, None, []),
                          (7, 3, [1, 3, 5])])
def test_every_other_shot_from_the_second_is_held_out(n_shots, holdout, expected):
    assert holdout_shots(n_shots, holdout) == expected


@pytest.mark.parametrize(("n_shots", "holdout", "message"),
                         [(5, 3, "at most 2"), (2, 1, "at most 0"), (5, -1, ">= 0"), (5, 1.5, "whole number")])
def test_impossible_holdouts_are_named(n_shots, holdout, message):
    with pytest.raises(OptionError, match=message):
        holdout_shots(n_shots, holdout)


def test_held_out_data_change_the_held_out_misfit_and_not_the_inversion():
    _, start, observed, physics = _linear_problem()
    models: list[list[np.ndarray]] = [[], [], []]

    def run(data: np.ndarray, trace: list[np.ndarray]):
        return refine(start, data, physics=physics, iterations=4, step="normalized", progress=False, holdout=1,
                      callback=lambda i, m, v: trace.append(v.numpy().copy()))

    plain = run(observed, models[0])
    held = observed.copy()
    held[:, 1] += np.random.default_rng(1).normal(0, 0.5, held[:, 1].shape).astype(np.float32)
    moved_held = run(held, models[1])
    assert moved_held.history == plain.history  # the inverted misfit (and so the gradient) ignores shot 1
    np.testing.assert_array_equal(np.stack(models[1]), np.stack(models[0]))
    assert moved_held.holdout_history[0] != plain.holdout_history[0]
    inverted = observed.copy()
    inverted[:, 2] += 0.5
    moved_inverted = run(inverted, models[2])
    assert moved_inverted.history != plain.history  # an inverted shot does steer the inversion
    assert moved_inverted.holdout_history[0][0] == plain.holdout_history[0][0]


def test_the_returned_model_is_the_best_iterate_on_held_out_shots_not_the_last():
    truth, start, observed, physics = _linear_problem()
    # The held-out shot recorded a model halfway to the truth: its misfit falls, then rises again.
    halfway = torch.from_numpy((start + truth) / 2)
    with torch.no_grad():
        observed[:, 1] = physics.simulate(halfway)[:, 1].numpy()
    evaluated: list[np.ndarray] = []
    result = refine(start, observed, physics=physics, iterations=12, progress=False, holdout=1, **RAW,
                    callback=lambda i, m, v: evaluated.append(v.numpy().copy()))
    history = result.holdout_history[0]
    assert len(history) == len(evaluated) + 1  # the start, then each evaluation
    best = int(np.argmin(history))
    assert 0 < best < len(history) - 1
    assert result.best_evaluation == [best] and result.kept_start == [False]
    np.testing.assert_array_equal(result.velocity, evaluated[best - 1])
    assert result.holdout_misfit_end == [min(history)]


def test_without_held_out_shots_refinement_is_what_it_was():
    _, start, observed, physics = _linear_problem()
    off = refine(start, observed, physics=physics, iterations=5, progress=False, holdout=0)
    assert off.holdout_shots == [] and off.kept_start == [False] and off.holdout_history == []


@pytest.fixture(scope="module")
def wave_case():
    physics = api.build_physics("deepwave", survey=WAVE_SURVEY)
    truth = _layered(2)
    with torch.no_grad():
        observed = physics.simulate(torch.from_numpy(truth)).numpy()
    start = truth.copy()
    start[1:] = gaussian_blur(torch.from_numpy(truth[1:]), 2.5).numpy()
    result = refine(start, observed, physics=physics, iterations=8, progress=False, holdout=1)
    return truth, start, result


def test_a_true_start_is_returned_unchanged_and_flagged(wave_case):
    truth, start, result = wave_case
    assert result.holdout_shots == [1]
    assert result.kept_start[0] and result.unchanged == [0]
    np.testing.assert_array_equal(result.velocity[0], start[0])
    assert result.holdout_misfit_end[0] == result.holdout_misfit_start[0] == 0.0
    assert "map(s) 0 of 2 left unchanged" in result.holdout_note()


def test_a_smoothed_truth_improves_on_held_out_shots_and_is_refined(wave_case):
    truth, start, result = wave_case
    assert not result.kept_start[1]
    assert result.holdout_misfit_end[1] < 0.99 * result.holdout_misfit_start[1]
    assert np.abs(result.velocity[1] - truth[1]).mean() < np.abs(start[1] - truth[1]).mean()
    assert not np.array_equal(result.velocity[1], start[1])


def test_fwi_refine_names_the_maps_left_unchanged(tmp_path):
    survey = Survey.small(nz=12, nx=12, nt=100, n_sources=3)
    truth = np.full((2, 1, 12, 12), 2200.0, np.float32)
    truth[..., 6:, :] = 2800.0
    physics = api.build_physics("deepwave", survey=survey)
    np.save(tmp_path / "observed.npy", physics.simulate(torch.from_numpy(truth)).numpy())
    np.save(tmp_path / "initial.npy", truth)  # already the truth: nothing can do better on the held-out shot
    survey.save(tmp_path / "survey.toml")
    from fwi_plugins.cli import main

    result = CliRunner().invoke(main, ["refine", "--initial", str(tmp_path / "initial.npy"), "--observed",
                                       str(tmp_path / "observed.npy"), "--survey", str(tmp_path / "survey.toml"),
                                       "--iterations", "2", "--out", str(tmp_path / "out"), "--no-progress",
                                       "--device", "cpu", "--holdout", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "map(s) 0, 1 of 2 left unchanged" in result.output
    import json

    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["kept_start"] == [True, True] and metrics["holdout_shots"] == [1]


def test_auto_regularization_keeps_the_candidate_best_on_held_out_shots(monkeypatch):
    from fwi_plugins.engine.refinement import select as refine_select

    _, start, observed, physics = _linear_problem()
    calls: list[float] = []
    real = refine_select.relative_holdout

    def scored(result):  # pretend the 4th candidate, smooth-0.1, predicts the held-out shot best
        calls.append(real(result))
        return 0.0 if len(calls) == 4 else calls[-1] + 1.0

    monkeypatch.setattr(refine_select, "relative_holdout", scored)
    chosen = refine(start, observed, physics=physics, iterations=3, progress=False, regularization="auto",
                    holdout=1)
    assert len(calls) == len(refine_select.CANDIDATES)
    assert chosen.regularization is not None
    assert chosen.regularization["chosen"] == "smooth-0.1" and chosen.regularization["sobolev"] == 0.1
    alone = refine(start, observed, physics=physics, iterations=3, progress=False, tv=0.0, sobolev=0.1, holdout=1)
    np.testing.assert_array_equal(chosen.velocity, alone.velocity)
    with pytest.raises(OptionError, match="held-out shots"):
        refine(start, observed, physics=physics, iterations=1, progress=False, regularization="auto", holdout=0)


def test_the_smoothness_penalty_is_the_mean_squared_gradient():
    from fwi_plugins.engine.refinement.terms import sobolev_penalty

    model = torch.zeros(1, 1, 3, 3)
    model[..., 2, :] = 1.0  # one jump of 1 between rows 1 and 2: dz = 1 on 2 of the 4 cells scored
    assert float(sobolev_penalty(model)) == pytest.approx(0.5)
    with pytest.raises(OptionError, match="sobolev"):
        _, start, observed, physics = _linear_problem()
        refine(start, observed, physics=physics, iterations=1, progress=False, sobolev=-1.0)
