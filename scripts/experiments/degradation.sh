#!/usr/bin/env bash
# The degradation experiment of He et al. 2016 (Fig. 6) on Fashion-MNIST: plain-20, plain-56, ResNet-20 and
# ResNet-56 (option A shortcuts) trained with the same budget, schedule and seed; training-loss and test-error
# curves in one comparison page, and a table (docs/experiments.md).
#
# Usage: bash scripts/experiments/degradation.sh [OUT] [TRAIN_IMAGES] [EPOCHS] [TEST_IMAGES] [WARMUP_STEPS]
#   defaults: runs/degradation 10000 6 5000 0. SGD lr 0.1 momentum 0.9, weight decay 1e-4, cosine schedule
#   (after a linear warm-up of WARMUP_STEPS steps, the same for the four nets),
#   batch 128, random crops (padding 2) and flips, seed 1. The four runs go side by side, one kernel thread
#   each (same numbers on any machine with the same instruction set); the monitor samples every 10 steps.
# Writes OUT/{plain-20,plain-56,resnet-20,resnet-56}/ (run directories), OUT/report.html and OUT/table.md.
# MODELS="resnet-20 resnet-56" (environment) runs only the nets named; RESNET_OPTS="start=zero-gamma" (environment)
# adds options to the ResNets' shorthand (docs/model-spec.md), for example Goyal et al.'s zero-initialised last γ.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/degradation}
train=${2:-10000}
epochs=${3:-6}
test=${4:-5000}
warmup=${5:-0}
dotnet build -c Release src/GradFlow.Cli >/dev/null
gradflow() { dotnet src/GradFlow.Cli/bin/Release/net10.0/GradFlow.Cli.dll "$@"; }
runs=()
for name in ${MODELS:-plain-20 plain-56 resnet-20 resnet-56}; do
  case "$name" in
    plain-20|plain-56) runs+=("$name|${name//-/}") ;;
    resnet-20|resnet-56) runs+=("$name|${name//-/}${RESNET_OPTS:+ $RESNET_OPTS}") ;;
    *) echo "MODELS: unknown net '$name' (plain-20, plain-56, resnet-20, resnet-56)" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
pids=()
for r in "${runs[@]}"; do
  name=${r%%|*}; model=${r#*|}
  gradflow train --model "$model in=1x28x28" --optimizer sgd --lr 0.1 --momentum 0.9 --weight-decay 1e-4 \
    --schedule cosine --warmup "$warmup" --epochs "$epochs" --batch-size 128 --augment-crop 2 --augment-flip 0.5 \
    --train-limit "$train" --test-limit "$test" --seed 1 --threads 1 --monitor --monitor-every 10 \
    --force --out "$out/$name" >"$out/$name.log" 2>&1 &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
if [ "$status" -ne 0 ]; then echo "a run failed: see $out/*.log" >&2; exit 1; fi
gradflow report $(for r in "${runs[@]}"; do echo "$out/${r%%|*}"; done) --out "$out/report.html"
# the table: training loss (mean over each epoch) and test error after each epoch
field() { sed -n "s/.*\"$1\":\([0-9.eE+-]*\).*/\1/p"; }
{
  printf '| model |'; for e in $(seq 1 "$epochs"); do printf ' epoch %s |' "$e"; done; echo
  printf '|---|'; for e in $(seq 1 "$epochs"); do printf -- '---:|'; done; echo
  for r in "${runs[@]}"; do
    name=${r%%|*}
    epochs_lines=$(grep '"type":"epoch"' "$out/$name/metrics.jsonl")
    loss=($(echo "$epochs_lines" | field train_loss))
    acc=($(echo "$epochs_lines" | field test_accuracy))
    printf '| %s |' "$name"
    for i in "${!loss[@]}"; do awk -v l="${loss[$i]}" -v a="${acc[$i]}" 'BEGIN { printf " %.3f / %.1f %% |", l, (1 - a) * 100 }'; done
    echo
  done
  echo
  echo "cells: training loss (mean over the epoch) / test error after the epoch; $train training images, $test test images, $epochs epochs, warm-up $warmup steps${RESNET_OPTS:+, ResNets with $RESNET_OPTS}"
} | tee "$out/table.md"
