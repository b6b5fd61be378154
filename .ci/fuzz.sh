#!/usr/bin/env bash
# Short fuzz run for CI: each fuzz target for FUZZTIME (default 7s), one
# target per `go test -fuzz` invocation as go requires. Minimizing a new
# interesting input may take 60s by default, during which nothing else is
# fuzzed; FUZZMINIMIZETIME (default 2s) caps it. Exits non-zero on
# the first failing target; the failing input is then in the package's
# testdata/fuzz/<Target>/ and `go test -run '<Target>/<file>' ./<pkg>`
# reproduces it. The seed corpora already run as unit tests in `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."

export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
fuzztime="${FUZZTIME:-7s}"
minimizetime="${FUZZMINIMIZETIME:-2s}"

targets=(
  "FuzzParseAddress ./internal/consent"
  "FuzzChain ./internal/consent"
  "FuzzVerify ./internal/token"
  "FuzzSignupBinding ./internal/web"
  "FuzzImportRow ./internal/bolt"
  "FuzzImportFile ./internal/bolt"
)

for t in "${targets[@]}"; do
  read -r name pkg <<<"$t"
  echo "== $name ($pkg, $fuzztime)"
  if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimizetime" "$pkg"; then
    echo "fuzz: $name failed; the input is under $pkg/testdata/fuzz/$name/" >&2
    exit 1
  fi
done
