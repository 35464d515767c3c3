#!/usr/bin/env bash
# Builds k6 with the project's MQTT extension (loadtest/xk6-mqtt) and prints the binary's path.
# The binary is cached outside the clone, keyed by the k6 version and a hash of the extension's
# sources (go.mod, go.sum, *.go), so a change to the extension builds a new one and an unchanged
# one is found in milliseconds. Safe to run from several processes at once.
#
#   loadtest/build-k6.sh        -> ~/.cache/smart-parking/tools/k6-v1.8.1-mqtt-<hash>/k6
#
# src/embedded/local-services.ts (toolPaths.k6) computes the same path; keep the hash in step.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ext="$here/xk6-mqtt"
# shellcheck source=../scripts/tool-versions.env
source "$here/../scripts/tool-versions.env"

CACHE="${SMART_PARKING_CACHE:-$HOME/.cache/smart-parking}"
TOOLS="$CACHE/tools"
mkdir -p "$TOOLS"

die() {
  printf '\nsmart-parking: %s\n\n' "$1" >&2
  exit 1
}
say() { printf 'smart-parking: %s\n' "$1" >&2; }

# sha256 of the lines "<sha256>  ./<file>" of the sources in byte order; the first 12 hex digits.
source_hash() {
  (cd "$ext" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -print | LC_ALL=C sort |
    xargs sha256sum | sha256sum | cut -c1-12)
}

dir="$TOOLS/k6-$K6_VERSION-mqtt-$(source_hash)"
if [[ -x "$dir/k6" ]]; then
  echo "$dir/k6"
  exit 0
fi

# Its own lock, not install.lock: scripts/install-services.sh holds that one while it calls us.
exec 9>"$CACHE/k6-build.lock"
flock 9
if [[ -x "$dir/k6" ]]; then # built by another process while we waited
  echo "$dir/k6"
  exit 0
fi

command -v go >/dev/null 2>&1 ||
  die "building k6 needs the Go toolchain (https://go.dev/dl/, or apt-get install golang); then run this again"
# The versions in tool-versions.env name the directory; go.mod is what is built. They must agree.
grep -Eq "^\s*go\.k6\.io/k6 $K6_VERSION\$" "$ext/go.mod" ||
  die "loadtest/xk6-mqtt/go.mod does not require go.k6.io/k6 $K6_VERSION (scripts/tool-versions.env)"
grep -Eq "^\s*github\.com/eclipse/paho\.mqtt\.golang $PAHO_MQTT_VERSION\$" "$ext/go.mod" ||
  die "loadtest/xk6-mqtt/go.mod does not require paho.mqtt.golang $PAHO_MQTT_VERSION (scripts/tool-versions.env)"

say "building k6 $K6_VERSION with the MQTT extension (once per extension change, a few minutes, cached in $dir)"
rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
(cd "$ext" && CGO_ENABLED=0 go build -mod=readonly -trimpath -buildvcs=false -o "$dir.tmp/k6" ./cmd/k6) \
  >"$CACHE/k6.log" 2>&1 || die "building k6 failed; see $CACHE/k6.log"
rm -rf "$dir" && mv "$dir.tmp" "$dir"
echo "$dir/k6"
