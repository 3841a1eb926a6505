#!/usr/bin/env bash
# The test command (README): builds and runs the whole test suite (xunit v3 on
# Microsoft.Testing.Platform), then prints
#   tests: N passed, N failed
# taken from the run's own summary. Extra arguments go to `dotnet test`, e.g.
#   bash scripts/test.sh --filter-not-trait "Category=Long"
# The tests of trait Category=Experiment (the replications of a documented experiment, several minutes each) are left
# out: their own scripts run them (scripts/adding-problem.sh), so that the suite stays under 10 minutes on a slow
# 2-core machine.
# Exit code: 0 when every test passed.
set -uo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests need: Fashion-MNIST (the training test), PyTorch (the
# interoperability tests read GradFlow's safetensors files with it), NumPy (NPY/NPZ files written
# by numpy), protobuf (the TensorBoard event files are read back by an independent Python reader),
# ONNX (PyTorch's ONNX export for the importer's tests, and ONNX's checker for the exporter's),
# Chromium with its WebDriver (the report and the live dashboard are driven headless by Selenium),
# the King James Bible (bible-kjv-text, read by bible-kjv's program: the character-level
# language-model corpus) and Open MPI (the data-parallel tests run mpirun --oversubscribe -np 2
# and 3 on localhost). Installed when missing.
need=""
[ -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need="$need dataset-fashion-mnist"
/usr/bin/python3 -c "import torch" >/dev/null 2>&1 || need="$need python3-torch"
/usr/bin/python3 -c "import numpy" >/dev/null 2>&1 || need="$need python3-numpy"
/usr/bin/python3 -c "import google.protobuf" >/dev/null 2>&1 || need="$need python3-protobuf"
/usr/bin/python3 -c "import onnx" >/dev/null 2>&1 || need="$need python3-onnx"
[ -x /usr/bin/chromium ] || need="$need chromium"
[ -x /usr/bin/chromedriver ] || need="$need chromium-driver"
{ [ -x /usr/bin/bible ] && [ -e /usr/lib/bible.data ]; } || need="$need bible-kjv bible-kjv-text"
command -v mpirun >/dev/null 2>&1 || need="$need openmpi-bin"
[ -e /usr/lib/x86_64-linux-gnu/libmpi.so ] || [ -e /usr/lib/aarch64-linux-gnu/libmpi.so ] || need="$need libopenmpi-dev"
if [ -n "$need" ]; then
  echo "installing Debian packages:$need"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y --no-install-recommends $need >/dev/null 2>&1 ||
    { $SUDO apt-get update >/dev/null 2>&1 && $SUDO apt-get install -y --no-install-recommends $need >/dev/null; } ||
    echo "warning: could not install$need; the tests that need them will fail and say so" >&2
fi
log=$(mktemp)
# A crash of the test process (a signal, not a failing test) ends the run without naming a test: the runtime then
# writes a crash report of every thread's stack (createdump), summarised below by scripts/crash-report.py. The test
# process keeps these settings to itself (tests/GradFlow.Tests/TestSupport/SuiteSetup.cs).
dumps=$(mktemp -d)
trap 'rm -f "$log"; rm -rf "$dumps"' EXIT

# A hang of the test process (a test that never ends) would otherwise run until CI's own limit and say nothing: the test
# platform's hang dump (Microsoft.Testing.Extensions.HangDump) ends the process once no test has started or ended for
# HANG_TIMEOUT, having written a dump and the tests still running, summarised below by scripts/hang-report.py. The
# longest test takes a few minutes and the whole suite about 8 on 2 cores: a hang ends the run well inside CI's 90.
hang_timeout=${HANG_TIMEOUT:-20m}
# the run's files (the browser tests' screenshots, a hang's dump and log) go to TestResults/ (ignored by git)
results="$PWD/TestResults"
rm -f "$results"/*_hang.log "$results"/*_hang.dmp
DOTNET_DbgEnableMiniDump=1 DOTNET_DbgMiniDumpType=1 DOTNET_EnableCrashReport=1 DOTNET_DbgMiniDumpName="$dumps/dump.%p" \
  dotnet test --solution GradFlow.sln -c Release --no-progress \
    --hangdump --hangdump-timeout "$hang_timeout" --hangdump-type Mini --results-directory "$results" \
    --filter-not-trait "Category=Experiment" "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

# the tests still running when a hang ended the process (none: no hang); each counts as failed below
hung=$(cat "$results"/*_hang.log 2>/dev/null | grep -c . || true)
if compgen -G "$results/*_hang.log" >/dev/null; then
  echo "the test process hung: it was ended when no test had started or ended for $hang_timeout"
  # the stacks, read from the dump with dotnet-dump (a NuGet tool, installed here when the machine lacks it)
  stacks=""
  dump=$(compgen -G "$results/*_hang.dmp" | head -n 1)
  if [ -n "$dump" ] && dotnet tool install --tool-path "$dumps/tools" dotnet-dump >/dev/null 2>&1; then
    stacks=$("$dumps/tools/dotnet-dump" analyze "$dump" -c "clrstack -all" -c exit 2>&1)
  else
    echo "(dotnet-dump could not be installed: no stacks)"
  fi
  printf '%s' "$stacks" | python3 scripts/hang-report.py "$results" || echo "(the hang log could not be read)"
fi

if compgen -G "$dumps/*.crashreport.json" >/dev/null; then
  echo "a test process crashed (exit code $status); what its threads were doing:"
  python3 scripts/crash-report.py "$dumps" || echo "(the crash report could not be read)"
elif [ "$status" -ne 0 ]; then
  # when the runtime ended the process itself without a crash report: its message, shortened, here at the end (nothing otherwise)
  python3 scripts/crash-report.py --log "$log" || echo "(the run's output could not be read)"
fi

passed=$(awk '/^Test run summary/{s=1} s && $1=="succeeded:"{print $2; exit}' "$log")
failed=$(awk '/^Test run summary/{s=1} s && $1=="failed:"{print $2; exit}' "$log")
# a test process that died (a crash, not a failing test) is an error of the run, not a failed test: counted as one
errors=$(awk '/^Test run summary/{s=1} s && $1=="error:"{print $2; exit}' "$log")
if [ -z "$passed" ] || [ -z "$failed" ]; then
  echo "no test summary was printed (build failure?)" >&2
  echo "tests: 0 passed, 1 failed"
  exit 1
fi
# a hung test neither passed nor failed in the summary (its process was ended): it counts as failed
if compgen -G "$results/*_hang.log" >/dev/null; then failed=$((failed + (hung > 0 ? hung : 1)));
elif [ -n "$errors" ]; then failed=$((failed + errors)); fi
echo "tests: $passed passed, $failed failed"
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then exit 1; fi
exit 0
