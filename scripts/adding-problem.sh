#!/usr/bin/env bash
# The adding-problem experiment of docs/recurrent.md (the Experiment tests of AddingProblemTests, which
# scripts/test.sh leaves out):
# one recurrent layer of 64 units, Adam (1e-2; the tanh RNN at T = 50: 1e-3), clipping at norm 1,
# batch 32, 1000 fresh test sequences; T = 50 for every cell (1 seed), then T = 100 for LSTM, GRU
# and tanh RNN x 3 seeds (4000 steps at most each). Prints one line per run.
# About 12 minutes on 2 cores.
# Usage: bash scripts/adding-problem.sh [50|100]   (default: both)
set -uo pipefail
cd "$(dirname "$0")/.."
case "${1:-all}" in
  50) filter=(--filter-method '*Experiment_Length50*') ;;
  100) filter=(--filter-method "*Experiment_Length100*") ;;
  *) filter=(--filter-method '*Experiment_Length*') ;;
esac
dotnet build -c Release tests/GradFlow.Tests >/dev/null || exit 1
dotnet test --project tests/GradFlow.Tests -c Release --no-build -- \
  --filter-class 'GradFlow.Tests.Recurrent.AddingProblemTests' "${filter[@]}" --show-live-output on
