#!/usr/bin/env bash
# The one-shot GPU pretraining recipe: install from the working tree (no network), then do
# what is left of corpus -> training -> sharded weights within this call's time budget.
#
#   benchmarks/device/pretrain_gpu.sh [--tiny] [--minutes 9] [--work DIR] [--out DIR] [--openfwi DIR]
#
# --openfwi DIR adds every map of the OpenFWI training archives flatvel-a_train_vmodel.zip and
# curvevel-a_train_vmodel.zip in DIR (relative paths from the repository root) to the corpus, as
# about half of the training samples; their test archives are never opened. On the GPU machine
# DIR is the ignored folder data/openfwi, carried with the call: carry=["data/openfwi"], and every
# call of one work folder gives the same --openfwi.
#
# On the lent GPU machine: call it twice, the second call straight after the first (the work
# folder, runs/gpu-recipe, lives on that machine only while it stays warm):
#   run(command="bash benchmarks/device/pretrain_gpu.sh", timeout_s=600)   # corpus, training starts
#   run(command="bash benchmarks/device/pretrain_gpu.sh", timeout_s=600)   # training ends, weights
# A session's device time (15 minutes, the machine's start included) and the 30 s warm window
# make a second call uncertain: `--calls 1` plans the training to end, annealed, in the first.
# Results in $OUT: model-0000i-of-0000N.safetensors + model.safetensors.index.json, model_card.md,
# model_card.json, pretrain_gpu.log. See docs/gpu_recipe.md.
set -euo pipefail
export RECIPE_START="${RECIPE_START:-$(date +%s)}"
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1

installed() {
    (cd / && "$PYTHON" -c "import fwi_plugins, fwi_torchwave.physics" 2>/dev/null)
}

if installed; then
    echo "pretrain_gpu: fwi-plugins and fwi-torchwave are importable; nothing to install"
else
    echo "pretrain_gpu: installing fwi-plugins and fwi-torchwave from the working tree (no network)"
    # --no-deps: the machine has torch, peft, pluggy, xarray, scipy, click and safetensors; the
    # recipe does not import what it lacks (deepwave, segyio, h5netcdf, platformdirs).
    if ! "$PYTHON" -m pip install -q --no-deps --no-build-isolation --no-index -e . -e plugins/fwi-torchwave; then
        echo "pretrain_gpu: pip could not install them; using the source folders on PYTHONPATH instead"
    fi
    if ! installed; then
        export PYTHONPATH="$PWD/src:$PWD/plugins/fwi-torchwave/src${PYTHONPATH:+:$PYTHONPATH}"
    fi
fi
exec "$PYTHON" benchmarks/device/pretrain_gpu.py "$@"
