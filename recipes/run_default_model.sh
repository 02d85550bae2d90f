#!/bin/sh
# The default-model recipe as run for the shipped model, in the background, with one log:
#   nohup sh recipes/run_default_model.sh > recipes/results/default-model.log 2>&1 &
# Every stage is resumable: rerunning skips finished units and continues interrupted ones. Some comparison arms
# were run on part of the folds for lack of time (--folds); drop it to run all four. The GAN comparison is
# bench/bench_gan.py.
set -e
cd "$(dirname "$0")/.."
PY=.venv/bin/python
$PY recipes/default_model.py logo --arms cpu-fine-k1-pretrained cpu-fine-k1-pretrained-allgroups
$PY recipes/default_model.py logo --arms cpu-fine-k1-scratch --folds G5 G4
$PY recipes/default_model.py logo --arms cpu-fine-k1-pretrained-allgroups-e20 cpu-fine-k1-pretrained-allgroups-reflect \
    --folds G0-3
$PY recipes/default_model.py logo --arms cpu-fine-k1-pretrained-allgroups-reflect-style
$PY recipes/default_model.py logo --arms cpu-fine-k1-pretrained-allgroups-reflect-style-e20
# probes on the G0-G3 fold (400 held-out slices): the paper's CLAHE on every input, a higher learning rate
$PY recipes/default_model.py logo --arms cpu-fine-k1-pretrained-allgroups-reflect-style-e20-clahe \
    --folds G0-3
$PY recipes/default_model.py logo --arms cpu-fine-k1-pretrained-allgroups-reflect-style-e20-lr1e-3
# longer fine-tuning (every fold's best epoch of e20 was its last ones): the shipped arm
$PY recipes/default_model.py logo --arms cpu-fine-k1-pretrained-allgroups-reflect-style-e40-lr1e-3
$PY recipes/default_model.py final --arm cpu-fine-k1-pretrained-allgroups-reflect-style-e40-lr1e-3
# a quarter of the fine-tuning patches from the pretraining phantoms, to keep their skill (two folds)
$PY recipes/default_model.py logo --arms cpu-fine-k1-pretrained-allgroups-reflect-style-e20-lr1e-3-phantoms25 \
    --folds G0-3 G6
# the 2.5D pretraining (fused skips), compared with the single-slice one on held-out phantom volumes
$PY recipes/default_model.py pretrain --arm cpu-fine-k3-pretrained
# preset and input mode at the same recipe and 20 epochs: 2.5D k=3, the cpu preset
$PY recipes/default_model.py logo --arms cpu-fine-k3-pretrained-allgroups-reflect-style-e20-lr1e-3 \
    cpu-k1-pretrained-allgroups-reflect-style-e20-lr1e-3
# longer fine-tuning of the 40-epoch fold models (G0-G3 only: it gained nothing there)
$PY recipes/default_model.py logo --arms cpu-fine-k1-pretrained-allgroups-reflect-style-e40-lr1e-3-plus20 \
    --folds G0-3
# the boundary-tolerant loss: from the pretraining in 20 epochs, and 10 epochs continuing the 40-epoch models,
# whose final stage continues the 40-epoch final model: the shipped model
$PY recipes/default_model.py logo --arms cpu-fine-k1-pretrained-allgroups-reflect-style-e20-lr1e-3-tolerant \
    cpu-fine-k1-pretrained-allgroups-reflect-style-e40-lr1e-3-tolerant10
$PY recipes/default_model.py final --arm cpu-fine-k1-pretrained-allgroups-reflect-style-e40-lr1e-3-tolerant10
# 10 epochs more of the tolerant loss (a smaller gain, not shipped)
$PY recipes/default_model.py logo --arms cpu-fine-k1-pretrained-allgroups-reflect-style-e40-lr1e-3-tolerant10-plus10
# what caps held-out Dice, no training: annotation geometry, thinning, ensembles and a weight soup
$PY recipes/probe_geometry.py --arm cpu-fine-k1-pretrained-allgroups-reflect-style-e40-lr1e-3-tolerant10
$PY recipes/probe_ensemble.py --arms cpu-fine-k1-pretrained-allgroups-reflect-style-e40-lr1e-3 \
    cpu-fine-k1-pretrained-allgroups-reflect-style-e40-lr1e-3-tolerant10 \
    cpu-fine-k1-pretrained-allgroups-reflect-style-e40-lr1e-3-tolerant10-plus10 --soup \
    --out recipes/results/probe-ensemble-chain.json
$PY recipes/probe_ensemble.py --arms cpu-fine-k1-pretrained-allgroups-reflect-style-e40-lr1e-3-tolerant10 \
    cpu-fine-k1-pretrained-allgroups-reflect-style-e20-lr1e-3-tolerant \
    cpu-fine-k3-pretrained-allgroups-reflect-style-e20-lr1e-3 cpu-k1-pretrained-allgroups-reflect-style-e20-lr1e-3 \
    --out recipes/results/probe-ensemble-diverse.json
# a longer phantom pretraining (30 epochs instead of 8), then the e20-lr1e-3 fine-tuning and 10 epochs of the
# tolerant loss on top: the shipped model (its final stages run one thread beside the validation runs, then two)
$PY recipes/default_model.py pretrain --arm cpu-fine-k1-pretrained30-allgroups-reflect-style-e20-lr1e-3
$PY recipes/default_model.py logo --arms cpu-fine-k1-pretrained30-allgroups-reflect-style-e20-lr1e-3 \
    cpu-fine-k1-pretrained30-allgroups-reflect-style-e20-lr1e-3-tolerant10
$PY recipes/default_model.py final --arm cpu-fine-k1-pretrained30-allgroups-reflect-style-e20-lr1e-3 \
    --out recipes/runs/final-e20-unshipped
$PY recipes/default_model.py final --arm cpu-fine-k1-pretrained30-allgroups-reflect-style-e20-lr1e-3-tolerant10
$PY recipes/default_model.py report
