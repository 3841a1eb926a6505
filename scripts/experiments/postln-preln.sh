#!/usr/bin/env bash
# Post-LN against Pre-LN, with and without a learning-rate warm-up (Xiong et al. 2020), at 6 and 12 layers, on
# the King James Bible character corpus (--data kjv), every run with the same budget, optimiser and seed.
# Per run: the validation loss in bits per character, the parameter-gradient norm by layer index at the first
# monitored step (the quantity of Xiong et al.: the last transformer layer's over the first's), and the verdicts
# of the run's diagnosis. Writes OUT/<run>/ (run directories), OUT/report.html (loss curves side by side) and
# OUT/table.md.
#
# Usage: bash scripts/experiments/postln-preln.sh [OUT] [STEPS] [D] [CTX] [BATCH] [LR] [WARMUP]
#   defaults: runs/postln-preln 700 96 96 32 0.003 70; heads 4 (2 when D < 64), AdamW (weight decay 0.01),
#   constant rate after the warm-up, clip-norm 1, seed 1, one kernel thread per run, two runs at a time,
#   the monitor every 10 steps, validation on 500 windows.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/postln-preln}
steps=${2:-700}
d=${3:-96}
ctx=${4:-96}
batch=${5:-32}
lr=${6:-0.003}
warm=${7:-70}
heads=4; [ "$d" -lt 64 ] && heads=2
dotnet build -c Release src/GradFlow.Cli >/dev/null
gradflow() { dotnet src/GradFlow.Cli/bin/Release/net10.0/GradFlow.Cli.dll "$@"; }
mkdir -p "$out"
runs=()
for layers in 6 12; do for norm in post pre; do for w in 0 "$warm"; do runs+=("$layers|$norm|$w"); done; done; done
run() {
  IFS='|' read -r layers norm w <<<"$1"
  local name="L$layers-$norm-warmup$w"
  gradflow train --model "transformer vocab=63 d=$d heads=$heads layers=$layers ctx=$ctx norm=$norm" --data kjv \
    --optimizer adamw --lr "$lr" --weight-decay 0.01 --warmup "$w" --clip-norm 1 --batch-size "$batch" \
    --max-steps "$steps" --epochs 1 --test-limit 500 --seed 1 --threads 1 --monitor --monitor-every 10 \
    --force --out "$out/$name" >"$out/$name.log" 2>&1
}
pids=()
for r in "${runs[@]}"; do
  run "$r" & pids+=($!)
  if [ "${#pids[@]}" -ge 2 ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p"; done
names=(); for r in "${runs[@]}"; do IFS='|' read -r layers norm w <<<"$r"; names+=("$out/L$layers-$norm-warmup$w"); done
gradflow report "${names[@]}" --out "$out/report.html"
python3 - "$out" "${names[@]}" >"$out/table.md" <<'PY'
import json, math, os, sys
print("| layers | norm | warm-up | final train loss | validation bits/char | grad-norm last/first layer at step 0 | verdicts |")
print("|---:|---|---:|---:|---:|---:|---|")
for run in sys.argv[2:]:
    name = os.path.basename(run)
    layers, norm, warm = name[1:].split("-")[0], name.split("-")[1], name.split("warmup")[1]
    lines = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl"))]
    epochs = [l for l in lines if l.get("type") == "epoch"]
    steps = [l for l in lines if l.get("type") == "step"]
    growth = "-"
    if steps and steps[0].get("blocks"):
        g = {l["layer"]: l["grad_norm"] or 0.0 for l in steps[0]["layers"]}
        blk = steps[0]["blocks"]
        norm_of = lambda b: math.hypot(g[b["attention_layer"]], g[b["attention_layer"] + 1])
        growth = f"{norm_of(blk[-1]) / norm_of(blk[0]):.3g}"
    e = epochs[-1] if epochs else {}
    test = e.get("test_loss")
    bpc = f"{float(test) / math.log(2):.3f}" if isinstance(test, (int, float)) else str(test)
    train = e.get("train_loss")
    train = f"{float(train):.3f}" if isinstance(train, (int, float)) else str(train)
    diag = os.path.join(run, "diagnosis.json")
    kinds = [p["kind"] for p in json.load(open(diag))["problems"]] if os.path.exists(diag) else ["(no diagnosis.json)"]
    print(f"| {layers} | {norm}-LN | {warm} | {train} | {bpc} | {growth} | {', '.join(kinds) or 'healthy'} |")
PY
cat "$out/table.md"
