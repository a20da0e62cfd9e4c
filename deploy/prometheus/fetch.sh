#!/usr/bin/env bash
# Fetch Prometheus (the server and promtool) from Debian's `prometheus` package, without installing
# it: `apt-get download` fetches the .deb, `dpkg-deb -x` unpacks it under the tools folder. No
# system package is installed and no service is started. Idempotent: once unpacked (and runnable),
# it only prints where the binaries are.
#
# Usage: deploy/prometheus/fetch.sh        prints the directory holding `prometheus` and `promtool`
#
# Environment (optional):
#   PROMETHEUS_TOOLS_DIR   where to unpack (default <repo>/.tools/prometheus)
#   PROMETHEUS_MIN_VERSION oldest acceptable version (default 2.37: `promtool test rules` and the
#                          HTTP API features the tests use)
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/../.." && pwd -P)
TOOLS_DIR=${PROMETHEUS_TOOLS_DIR:-$REPO_ROOT/.tools/prometheus}
TOOLS_DIR=${TOOLS_DIR%/}
MIN_VERSION=${PROMETHEUS_MIN_VERSION:-2.37}
BIN_DIR=$TOOLS_DIR/usr/bin

log() { printf 'fetch.sh: %s\n' "$*" >&2; }
die() {
  printf 'fetch.sh: ERROR: %s\n' "$*" >&2
  exit 1
}

# "2.42.0+ds" -> 2.42.0; true when $1 >= $2 in version order.
version_at_least() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

check_binaries() {
  local name version
  for name in prometheus promtool; do
    [ -x "$BIN_DIR/$name" ] || return 1
    version=$("$BIN_DIR/$name" --version 2>&1 | sed -n 's/^[a-z]*, version \([0-9][0-9.]*\).*/\1/p' | head -n1)
    [ -n "$version" ] || die "$BIN_DIR/$name does not run here: $("$BIN_DIR/$name" --version 2>&1 | head -n1)"
    version_at_least "$version" "$MIN_VERSION" ||
      die "$name $version is older than $MIN_VERSION; delete $TOOLS_DIR and fetch a newer package"
  done
}

if check_binaries; then
  printf '%s\n' "$BIN_DIR"
  exit 0
fi

for tool in apt-get apt-cache dpkg-deb; do
  command -v "$tool" >/dev/null || die "$tool not found: this script needs a Debian or Ubuntu system"
done

if ! apt-cache show prometheus >/dev/null 2>&1; then
  log "the package lists do not know 'prometheus'; running apt-get update"
  apt-get update -qq || die "apt-get update failed (it needs root or sudo); run it, then this script again"
  apt-cache show prometheus >/dev/null 2>&1 || die "no 'prometheus' package in the configured apt sources"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/poa-prometheus.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
chmod 755 "$WORK" # apt's sandbox user must be able to write the download here
log "downloading Debian's prometheus package ($(apt-cache policy prometheus | sed -n 's/^ *Candidate: //p'))"
(cd "$WORK" && apt-get download -qq prometheus 2>"$WORK/apt.err") ||
  die "apt-get download prometheus failed: $(grep -v '^W:' "$WORK/apt.err" | tail -n3)"
DEB=$(find "$WORK" -maxdepth 1 -name 'prometheus_*.deb' | head -n1)
[ -n "$DEB" ] || die "apt-get download left no prometheus_*.deb"

# Unpacked beside the target and renamed into place, so an interrupted run never leaves half a tree.
mkdir -p "$(dirname "$TOOLS_DIR")"
STAGE=$(mktemp -d "$TOOLS_DIR.partial.XXXXXX")
dpkg-deb -x "$DEB" "$STAGE" || { rm -rf "$STAGE"; die "dpkg-deb -x $DEB failed"; }
rm -rf "$TOOLS_DIR"
mv "$STAGE" "$TOOLS_DIR"
check_binaries || die "the package unpacked, but $BIN_DIR has no prometheus and promtool"
log "unpacked $(basename "$DEB") into $TOOLS_DIR"
printf '%s\n' "$BIN_DIR"
