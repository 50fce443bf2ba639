#!/usr/bin/env bash
# All the tests: system packages they need, a build (worker threads run compiled JavaScript),
# type checks of the tests, then vitest. Extra arguments go to vitest (e.g. a file filter).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system-deps.sh
npm run --silent build
npx tsc -p tsconfig.test.json
npx biome lint .
npx vitest run "$@"
