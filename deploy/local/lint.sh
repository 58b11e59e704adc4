#!/usr/bin/env bash
# Runs golangci-lint with the repository's .golangci.yml. The linter is
# built from Go modules once into the cache (about 3 minutes on 2 cores)
# and reused afterwards; a pinned version keeps findings the same for
# everyone.
set -euo pipefail
cd "$(dirname "$0")/../.."

version=v2.15.0
cache="${FLOWPROOF_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/flowproof}"
bin_dir="$cache/golangci-lint-$version"
if [ ! -x "$bin_dir/golangci-lint" ]; then
  echo "lint: building golangci-lint $version into $bin_dir (first time only)"
  mkdir -p "$bin_dir"
  GOBIN="$bin_dir" go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$version"
fi
# --allow-parallel-runners: another checkout linting at the same time
# (a developer's editor, a second worktree) runs alongside instead of failing.
"$bin_dir/golangci-lint" run --allow-parallel-runners ./...
# deploy/cluster is a module of its own, which ./... does not reach.
(cd deploy/cluster && "$bin_dir/golangci-lint" run --allow-parallel-runners --config ../../.golangci.yml ./...)
