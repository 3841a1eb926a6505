#!/usr/bin/env bash
# The main job (README): installs Fashion-MNIST and the King James Bible (bible-kjv, bible-kjv-text) from
# Debian when they are missing, then runs
#   gradflow demo
# (a 20-layer sigmoid network: preflight, diagnosis of the vanishing gradient, automatic repair,
# the same budget before and after; then a deep plain CNN, a recurrent net and a Post-LN language model,
# each diagnosed and repaired). Extra arguments go to 'gradflow demo', e.g. --out DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
need=""
[ -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || [ -n "${GRADFLOW_DATA:-}" ] || need="$need dataset-fashion-mnist"
{ [ -x /usr/bin/bible ] && [ -e /usr/lib/bible.data ]; } || need="$need bible-kjv bible-kjv-text"
if [ -n "$need" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y --no-install-recommends $need >/dev/null 2>&1 ||
    { $SUDO apt-get update >/dev/null 2>&1 && $SUDO apt-get install -y --no-install-recommends $need >/dev/null; } ||
    echo "note: could not install$need; the demo uses a synthetic task instead of Fashion-MNIST and skips the language part without the King James Bible" >&2
fi
echo "building gradflow (Release; the first build takes a minute) ..." >&2
dotnet build src/GradFlow.Cli -c Release --nologo -v quiet -clp:ErrorsOnly
exec dotnet run -c Release --no-build --project src/GradFlow.Cli -- demo "$@"
