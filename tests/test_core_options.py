"""Option dataclasses: declared with help, parsed from strings, validated with clear errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from fwi_plugins.errors import OptionError, UnknownNameError
from fwi_plugins.options import describe, option, parse, to_dict


@dataclass(frozen=True, kw_only=True)
class Opts:
    rank: int = option(8, "rank")
    alpha: float = option(16.0, "scale")
    dropout: float = option(0.0, "dropout")
    bias: bool = option(False, "train biases")
    size: Literal["tiny", "small"] = option("tiny", "model size")
    targets: tuple[str, ...] = option(("qkv", "proj"), "modules to adapt")
    note: str | None = option(None, "free text")

    def __post_init__(self) -> None:
        if self.rank <= 0:
            raise ValueError(f"rank must be positive, got {self.rank}")


def test_strings_are_coerced_to_field_types():
    opts = parse(Opts, {"rank": "4", "alpha": "2.5", "bias": "yes", "size": "small",
                        "targets": "fc1, fc2", "note": "none"})
    assert opts == Opts(rank=4, alpha=2.5, bias=True, size="small", targets=("fc1", "fc2"), note=None)


def test_json_list_and_dash_keys():
    assert parse(Opts, {"targets": '["a", "b"]'}).targets == ("a", "b")
    assert parse(Opts, {"rank": 2}).rank == 2


def test_unknown_key_suggests_the_closest():
    with pytest.raises(UnknownNameError, match="Did you mean 'rank'"):
        parse(Opts, {"rnak": "4"}, owner="peft lora")


@pytest.mark.parametrize(("values", "message"), [
    ({"rank": "four"}, "expected int"),
    ({"bias": "maybe"}, "expected true or false"),
    ({"size": "huge"}, "not one of tiny, small"),
    ({"rank": "0"}, "rank must be positive"),
])
def test_bad_values_name_the_option(values, message):
    with pytest.raises(OptionError, match=message):
        parse(Opts, values, owner="peft lora")


def test_describe_and_to_dict():
    infos = {i.name: i for i in describe(Opts)}
    assert infos["size"].choices == ("tiny", "small")
    assert infos["rank"].help == "rank" and infos["rank"].default == 8
    assert to_dict(Opts())["targets"] == ["qkv", "proj"]


def test_component_without_options_rejects_any():
    with pytest.raises(UnknownNameError, match="takes no options"):
        parse(None, {"x": 1}, owner="physics toy")
