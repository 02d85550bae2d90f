#!/bin/sh
# The default-model recipe as run for the shipped model, in the background, with one log:
#   nohup sh recipes/run_default_model.sh > recipes/results/default-model.log 2>&1 &
# Every stage is resumable: rerunning skips finished units and continues interrupted ones. The scratch arm (the
# comparison without pretraining) was run on two folds for lack of time; drop --folds to run all four. The GAN
# comparison is bench/bench_gan.py.
set -e
cd "$(dirname "$0")/.."
PY=.venv/bin/python
$PY recipes/default_model.py logo --arms cpu-fine-k1-pretrained
$PY recipes/default_model.py logo --arms cpu-fine-k1-pretrained-allgroups
$PY recipes/default_model.py final --arm cpu-fine-k1-pretrained-allgroups
$PY recipes/default_model.py logo --arms cpu-fine-k1-scratch --folds G5 G4
$PY recipes/default_model.py report
