#!/usr/bin/env bash
# Post-LN against Pre-LN, with and without a learning-rate warm-up (Xiong et al. 2020), at 6 and 12 layers, on
# the King James Bible character corpus (--data kjv), every run with the same budget, optimiser and seed.
# Per run: the training-loss curve, the validation loss in bits per character, the parameter-gradient norm by
# layer index at the first monitored step (the quantity of Xiong et al.), the verdicts of 'gradflow diagnose'
# on the config (a trial of DIAGNOSE_STEPS steps, the first steps of the same run) and of the run's own
# diagnosis. Writes OUT/<run>/ (run directories), OUT/<run>.diagnose.json, OUT/report.html (the runs side by
# side: loss curves, gradient norm per layer at the first sample), OUT/report.png (a screenshot of it, when
# chromium is installed), OUT/table.md and OUT/init-grad-norms.md.
#
# Usage: bash scripts/experiments/postln-preln.sh [OUT] [STEPS] [D] [CTX] [BATCH] [LR] [WARMUP]
#   defaults: runs/postln-preln 500 64 64 16 0.003 100; heads 4 (2 when D < 64), AdamW (weight decay 0.01),
#   constant rate after the warm-up, clip-norm 1, seed 1, one kernel thread per run, two runs at a time,
#   the monitor every 10 steps, validation on 500 windows; DIAGNOSE_STEPS=150 (environment).
#   With REUSE=1, a run directory that already has its diagnosis.json (a finished run) is not trained again.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/postln-preln}
steps=${2:-500}
d=${3:-64}
ctx=${4:-64}
batch=${5:-16}
lr=${6:-0.003}
warm=${7:-100}
diagnose_steps=${DIAGNOSE_STEPS:-150}
heads=4; [ "$d" -lt 64 ] && heads=2
if ! { [ -x /usr/bin/bible ] && [ -e /usr/lib/bible.data ]; }; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y --no-install-recommends bible-kjv bible-kjv-text >/dev/null 2>&1 ||
    { $SUDO apt-get update >/dev/null 2>&1 && $SUDO apt-get install -y --no-install-recommends bible-kjv bible-kjv-text >/dev/null; }
fi
dotnet build -c Release src/GradFlow.Cli >/dev/null
gradflow() { dotnet src/GradFlow.Cli/bin/Release/net10.0/GradFlow.Cli.dll "$@"; }
mkdir -p "$out"
runs=()
for layers in 6 12; do for norm in post pre; do for w in 0 "$warm"; do runs+=("$layers|$norm|$w"); done; done; done
run() {
  IFS='|' read -r layers norm w <<<"$1"
  local name="L$layers-$norm-warmup$w"
  local config=(--model "transformer vocab=63 d=$d heads=$heads layers=$layers ctx=$ctx norm=$norm" --data kjv
    --optimizer adamw --lr "$lr" --weight-decay 0.01 --warmup "$w" --clip-norm 1 --batch-size "$batch"
    --max-steps "$steps" --epochs 1 --test-limit 500 --seed 1 --threads 1)
  if [ "${REUSE:-0}" != 1 ] || [ ! -f "$out/$name/diagnosis.json" ]; then
    local TIMEFORMAT="%R s wall, %U s user, %S s system"
    { time gradflow train "${config[@]}" --monitor --monitor-every 10 --force --out "$out/$name" >"$out/$name.log" 2>&1; } 2>"$out/$name.time"
  fi
  if [ "${REUSE:-0}" != 1 ] || [ ! -s "$out/$name.diagnose.json" ]; then
    # exit code 3 = a problem found
    gradflow diagnose "${config[@]}" --steps "$diagnose_steps" --every 10 --json >"$out/$name.diagnose.json" 2>"$out/$name.diagnose.log" || [ $? -eq 3 ]
  fi
}
pids=()
for r in "${runs[@]}"; do
  run "$r" & pids+=($!)
  if [ "${#pids[@]}" -ge 2 ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p"; done
names=(); for r in "${runs[@]}"; do IFS='|' read -r layers norm w <<<"$r"; names+=("$out/L$layers-$norm-warmup$w"); done
gradflow report "${names[@]}" --out "$out/report.html"
if [ -x /usr/bin/chromium ]; then
  # a picture of the comparison page for docs (the report's own charts)
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1200,2000 --screenshot="$(realpath "$out")/report.png" \
    "file://$(realpath "$out/report.html")" >/dev/null 2>&1 || echo "chromium could not take the screenshot; $out/report.html is the figure"
fi
python3 - "$out" "$steps" "$diagnose_steps" "${names[@]}" <<'PY'
import json, math, os, sys
out, steps, diagnose_steps, runs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]

def block_norms(sample):
    """Xiong et al.'s quantity per transformer layer: the norm of its two monitored weights' gradients (attention in_proj, feed-forward linear2)."""
    g = {l["layer"]: l["grad_norm"] or 0.0 for l in sample["layers"]}
    return [math.hypot(g[b["attention_layer"]], g[b["attention_layer"] + 1]) for b in sample["blocks"]]

def kinds(path):
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return "(missing)"
    d = json.load(open(path))
    return ", ".join(p["kind"] for p in d["problems"]) or "healthy"

table = ["| layers | norm | warm-up | training loss, last 50 steps | validation bits/char | ‖dL/dW‖ last / first layer at step 0 | `gradflow diagnose` ("
         + diagnose_steps + " steps) | the run's diagnosis (" + steps + " steps) | time (wall; user + system CPU) |",
         "|---:|---|---:|---:|---:|---:|---|---|---|"]
init = {}
for run in runs:
    name = os.path.basename(run)
    layers, norm, warm = name[1:].split("-")[0], name.split("-")[1], name.split("warmup")[1]
    lines = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl"))]
    epochs = [l for l in lines if l.get("type") == "epoch"]
    samples = [l for l in lines if l.get("type") == "step"]
    norms = block_norms(samples[0]) if samples and samples[0].get("blocks") else []
    init.setdefault((layers, norm), norms)
    last = [s["mean_loss"] for s in samples[-5:] if isinstance(s.get("mean_loss"), (int, float))]
    train = f"{sum(last) / len(last):.3f}" if last else "-"
    test = epochs[-1].get("test_loss") if epochs else None
    bpc = f"{test / math.log(2):.3f}" if isinstance(test, (int, float)) else "-"
    growth = f"{norms[-1] / norms[0]:.3g}" if norms else "-"
    t = open(run + ".time").read().split() if os.path.exists(run + ".time") else []
    time = f"{float(t[0]):.0f} s; {float(t[3]) + float(t[6]):.0f} s" if len(t) >= 7 else "-"
    table.append(f"| {layers} | {norm}-LN | {warm} | {train} | {bpc} | {growth} | {kinds(run + '.diagnose.json')} | {kinds(os.path.join(run, 'diagnosis.json'))} | {time} |")
open(os.path.join(out, "table.md"), "w").write("\n".join(table) + "\n")

width = max(len(v) for v in init.values())
rows = ["| layers | norm | " + " | ".join(str(i + 1) for i in range(width)) + " |", "|---:|---|" + "---:|" * width]
for (layers, norm), v in init.items():
    rows.append(f"| {layers} | {norm}-LN | " + " | ".join(f"{x:.3f}" for x in v) + " |" * (1 + width - len(v)))
open(os.path.join(out, "init-grad-norms.md"), "w").write("\n".join(rows) + "\n")
PY
cat "$out/table.md" "$out/init-grad-norms.md"
