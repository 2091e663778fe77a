"""Registration of the built-in PEFT methods.

Nothing here imports torch or peft: factories are ``"module:function"`` strings.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..hookspecs import hookimpl
from ..specs import PeftMethodSpec
from .peft_options import AdapterOptions, IA3Options, LoHaOptions, LoKrOptions, LoraOptions

_FACTORIES = "fwi_plugins.builtins.peft_methods"
#: Saver and loader of the methods built on AdaptedModel (peft methods keep peft's own layout).
_OWN_FORMAT = {"saver": "fwi_plugins.builtins.adapted_model:save_folder",
               "loader": "fwi_plugins.builtins.adapted_model:load_folder"}


@hookimpl
def fwi_peft_methods() -> Iterator[PeftMethodSpec]:
    yield PeftMethodSpec(name="lora", factory=f"{_FACTORIES}:apply_lora", options=LoraOptions,
                         description="LoRA: low-rank updates of linear and convolution weights (peft)",
                         example_options={"r": 2})
    yield PeftMethodSpec(name="ia3", factory=f"{_FACTORIES}:apply_ia3", options=IA3Options,
                         description="IA3: learned rescaling of activations (peft)")
    yield PeftMethodSpec(name="loha", factory=f"{_FACTORIES}:apply_loha", options=LoHaOptions,
                         description="LoHa: low-rank Hadamard-product updates (peft)",
                         example_options={"r": 2})
    yield PeftMethodSpec(name="lokr", factory=f"{_FACTORIES}:apply_lokr", options=LoKrOptions,
                         description="LoKr: low-rank Kronecker-product updates (peft)",
                         example_options={"r": 2})
    yield PeftMethodSpec(name="adapter", factory=f"{_FACTORIES}:apply_adapter", options=AdapterOptions,
                         aliases=("houlsby",), **_OWN_FORMAT,
                         description="bottleneck adapters inserted after the backbone's blocks")
    yield PeftMethodSpec(name="full", factory=f"{_FACTORIES}:apply_full", **_OWN_FORMAT,
                         description="full fine-tuning: every parameter trains")
    yield PeftMethodSpec(name="frozen", factory=f"{_FACTORIES}:apply_frozen", **_OWN_FORMAT,
                         description="frozen backbone: only the output head trains")
