#!/usr/bin/env bash
# `make bench`: runs the BenchmarkDotNet suites and writes docs/benchmarks.md with the machine and the
# exact command. Speed is only ever compared as ratios measured side by side in one run.
set -euo pipefail
cd "$(dirname "$0")/../.."
CONFIG=${CONFIG:-Release}
artifacts=out/bench
rm -rf "$artifacts"
cmd="dotnet tests/Appliance.Benchmarks/bin/$CONFIG/net10.0/Appliance.Benchmarks.dll --filter '*' --job short --memory --exporters github --artifacts $artifacts"
eval "$cmd"
{
  echo "# Benchmarks"
  echo
  echo "Written by \`make bench\` on $(date -u +%Y-%m-%dT%H:%MZ). Absolute figures on these shared machines are noisy;"
  echo "compare ratios measured in one run."
  echo
  echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -sr), .NET $(dotnet --version)."
  echo
  echo "## Request path (BenchmarkDotNet)"
  echo
  echo "Command: \`$cmd\`"
  echo
  for f in "$artifacts"/results/*-report-github.md; do
    sed -n '/^|/,$p' "$f"
    echo
  done
} > docs/benchmarks.md
echo "bench: wrote docs/benchmarks.md"
