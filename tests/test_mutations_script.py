"""benchmarks/mutations.py's own logic, with fake pytest runs: what counts as caught, what is an error.

Nothing here runs a mutation's tests; ``make mutations`` and ``make mutations-ci`` do.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mutations():
    spec = importlib.util.spec_from_file_location("fwi_mutations_script", ROOT / "benchmarks" / "mutations.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def fake(mutations, name: str, *, tests: tuple[str, ...] = ("tests/test_x.py",), old: str = "x = 1\n"):
    return mutations.Mutation(name, "src/fwi_plugins/example.py", old, "x = 2\n", tests, "a planted bug")


def test_every_mutation_applies_to_the_code_as_it_is_now(mutations):
    # After a refactor this names each mutation to move with the code (path and old text are data).
    mutations.check_applies(mutations.MUTATIONS)
    names = [m.name for m in mutations.MUTATIONS]
    assert len(names) == len(set(names))
    for m in mutations.MUTATIONS:
        assert m.old != m.new and m.tests and m.what
        for test in m.tests:
            assert (ROOT / test.split("::")[0]).is_file(), f"mutation {m.name!r}: no test file {test}"


def test_the_ci_subset_is_a_handful_of_the_named_classes(mutations):
    ci = {m.name for m in mutations.MUTATIONS if "ci" in m.subsets}
    assert 4 <= len(ci) <= 10
    for word in ("denormalise", "gathers", "torchwave", "bf16", "acquisition"):
        assert any(word in name for name in ci), word


def test_a_mutation_whose_text_is_missing_is_an_error_naming_it(mutations, tmp_path):
    (tmp_path / "src/fwi_plugins").mkdir(parents=True)
    (tmp_path / "src/fwi_plugins/example.py").write_text("x = 1\n")
    present, missing = fake(mutations, "present"), fake(mutations, "moved-away", old="y = 1\n")
    twice = fake(mutations, "ambiguous", old="")
    mutations.check_applies([present], tmp_path)
    with pytest.raises(mutations.MutationError) as raised:
        mutations.check_applies([present, missing, twice], tmp_path)
    message = str(raised.value)
    assert "'moved-away'" in message and "does not occur in src/fwi_plugins/example.py" in message
    assert "'ambiguous'" in message and "'present'" not in message
    gone = mutations.Mutation("gone", "src/nowhere.py", "a", "b", ("tests/test_x.py",), "?")
    with pytest.raises(mutations.MutationError, match="'gone': src/nowhere.py does not exist"):
        mutations.check_applies([gone], tmp_path)


def test_main_refuses_a_stale_mutation_before_running_anything(mutations, monkeypatch, capsys):
    stale = mutations.Mutation("stale-one", "src/fwi_plugins/survey.py", "text that is not there", "",
                               ("tests/test_survey_wavelet.py",), "?")
    monkeypatch.setattr(mutations, "MUTATIONS", (stale,))
    monkeypatch.setattr(mutations, "Scratch", None)  # copying the project would be a failure here
    assert mutations.main([]) == 2
    assert "mutation 'stale-one': its text does not occur in src/fwi_plugins/survey.py" in capsys.readouterr().err


def test_caught_only_when_the_baseline_passes_and_the_mutant_fails(mutations):
    Outcome = mutations.Outcome
    passing, failing = Outcome(code=0, passed=3), Outcome(code=1, passed=2, failed=1, output="FAILED t::a - x\nE  no")
    baselines = {("tests/broken.py",): Outcome(code=1, failed=1, output="FAILED already"),
                 ("tests/skipped.py",): Outcome(code=0, skipped=2), ("tests/good.py",): passing}
    after = {"caught": failing, "survives": passing, "crashes": Outcome(code=2), "hangs": Outcome(code=None)}
    chosen = [fake(mutations, "broken-baseline", tests=("tests/broken.py",)),
              fake(mutations, "skipped-baseline", tests=("tests/skipped.py",)),
              *(fake(mutations, name, tests=("tests/good.py",)) for name in after)]
    calls = []

    def baseline(tests):
        calls.append(tests)
        return baselines[tests]

    results = mutations.run_mutations(chosen, baseline=baseline, mutated=lambda m: after[m.name])
    status = {r["name"]: r["status"] for r in results}
    assert status == {"broken-baseline": "baseline-failed", "skipped-baseline": "baseline-failed",
                      "caught": "caught", "survives": "survived", "crashes": "error", "hangs": "timeout"}
    # A failing baseline is not run mutated (so it cannot count as caught), and is shown.
    by_name = {r["name"]: r for r in results}
    assert "mutated" not in by_name["broken-baseline"] and "FAILED already" in by_name["broken-baseline"]["detail"]
    assert by_name["caught"]["mutated"]["caught_by"] == "t::a"
    # One baseline per set of tests, marked as reused after the first.
    assert calls == [("tests/broken.py",), ("tests/skipped.py",), ("tests/good.py",)]
    assert [r["baseline"].get("reused", False) for r in results[2:]] == [False, True, True, True]


def test_planting_puts_the_file_back_even_when_the_run_fails(mutations, tmp_path):
    scratch = object.__new__(mutations.Scratch)
    scratch.folder, scratch.roots = tmp_path, [tmp_path / "src"]
    target = tmp_path / "src/fwi_plugins/example.py"
    target.parent.mkdir(parents=True)
    target.write_text("x = 1\n")
    with pytest.raises(RuntimeError), scratch.planted(fake(mutations, "m")):
        assert target.read_text() == "x = 2\n"
        raise RuntimeError("the tests crashed")
    assert target.read_text() == "x = 1\n"
    assert scratch.module_of("src/fwi_plugins/example.py") == "fwi_plugins.example"
    assert scratch.module_of("tests/test_x.py") is None


def test_pytest_summary_counts(mutations):
    output = "..s.F\nFAILED tests/a.py::b - assert 1\n1 failed, 3 passed, 1 skipped, 2 deselected in 4.2s\n"
    assert mutations._counts(output) == {"failed": 1, "passed": 3, "skipped": 1, "deselected": 2}
    assert mutations._counts("no summary") == {}
