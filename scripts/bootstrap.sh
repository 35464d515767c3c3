#!/usr/bin/env bash
# Makes a fresh clone runnable: npm dependencies (which pin Node >= 24 through the `node` package),
# then the local services. Cheap when everything is already in place.
#   scripts/bootstrap.sh         what `npm start` needs
#   scripts/bootstrap.sh --all   what `npm test` needs as well
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v npm >/dev/null 2>&1; then
  echo "smart-parking: npm is missing: install Node.js 20 or later (it brings npm); the project pins its own Node 24" >&2
  exit 1
fi
# Reinstall when package-lock.json changed since the last install.
if [[ ! -x node_modules/.bin/node || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "smart-parking: installing npm dependencies" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
bash scripts/install-services.sh "$@"
