#!/usr/bin/env bash
# Runs every interop peer (one run.sh per folder): implementations someone else wrote, so our
# sandbox and our client cannot share a misreading of the spec unnoticed. Fails if any fails.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
failed=()
for run in "$here"/*/run.sh; do
  peer=$(basename "$(dirname "$run")")
  echo "== interop: $peer" >&2
  if ! bash "$run"; then
    failed+=("$peer")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "interop peers failed: ${failed[*]}" >&2
  exit 1
fi
echo "interop: all peers passed" >&2
