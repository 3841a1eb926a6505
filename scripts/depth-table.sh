#!/usr/bin/env bash
# Test accuracy on Fashion-MNIST for depth 2/10/20 x five remedies (docs/experiments.md).
# Usage: bash scripts/depth-table.sh [EPOCHS]   (default 3; Adam lr 1e-3, batch 128, seed 0)
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-3}
dotnet build -c Release src/GradFlow.Cli >/dev/null
gradflow() { dotnet src/GradFlow.Cli/bin/Release/net10.0/GradFlow.Cli.dll "$@"; }
configs=(
  "sigmoid + Xavier|act=sigmoid init=xavier-uniform"
  "tanh + Xavier|act=tanh init=xavier-uniform"
  "ReLU + He|act=relu init=he-normal"
  "ReLU + He + BatchNorm|act=relu init=he-normal norm=batch"
  "ReLU + He + residual|act=relu init=he-normal residual=zero"
)
echo "| model | depth 2 | depth 10 | depth 20 |"
echo "|---|---:|---:|---:|"
for c in "${configs[@]}"; do
  name=${c%%|*}; opts=${c#*|}
  row="| $name |"
  for depth in 2 10 20; do
    acc=$(gradflow train --model "mlp 784-256x$depth-10 $opts" --epochs "$epochs" --seed 0 --json 2>/dev/null |
          grep '"test_accuracy"' | tail -1 | sed 's/.*"test_accuracy":\([0-9.eE+-]*\).*/\1/')
    row="$row $(awk -v a="$acc" 'BEGIN { printf "%.1f%%", a * 100 }') |"
  done
  echo "$row"
done
