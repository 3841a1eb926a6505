#!/usr/bin/env bash
# The main job (README): installs Fashion-MNIST from Debian when it is missing, then runs
#   gradflow demo
# (a 20-layer sigmoid network: preflight, diagnosis of the vanishing gradient, automatic repair,
# the same budget before and after). Extra arguments go to 'gradflow demo', e.g. --out DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && [ -z "${GRADFLOW_DATA:-}" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y --no-install-recommends dataset-fashion-mnist >/dev/null 2>&1 ||
    { $SUDO apt-get update >/dev/null 2>&1 && $SUDO apt-get install -y --no-install-recommends dataset-fashion-mnist >/dev/null; } ||
    echo "note: could not install dataset-fashion-mnist; the demo uses a synthetic task instead" >&2
fi
echo "building gradflow (Release; the first build takes a minute) ..." >&2
dotnet build src/GradFlow.Cli -c Release --nologo -v quiet -clp:ErrorsOnly
exec dotnet run -c Release --no-build --project src/GradFlow.Cli -- demo "$@"
