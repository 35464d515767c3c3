#!/usr/bin/env bash
# Installs the local services and tools the platform and its tests run on, idempotently.
# Debian packages (Redis, Mosquitto) go through apt; Go-built tools and the schemathesis
# virtual environment are cached outside the clone, keyed by version, so later runs take seconds.
#
#   scripts/install-services.sh          core: redis, mosquitto, ferretdb, stripe-mock (what `npm start` needs)
#   scripts/install-services.sh --all    core + versitygw, schemathesis, k6 with MQTT, chromium (what `npm test` needs)
#
# Prints nothing but a line per tool it actually had to install.
set -euo pipefail

# shellcheck source=tool-versions.env
source "$(dirname "${BASH_SOURCE[0]}")/tool-versions.env"

CACHE="${SMART_PARKING_CACHE:-$HOME/.cache/smart-parking}"
TOOLS="$CACHE/tools"
mkdir -p "$TOOLS"

want_all=false
[[ "${1:-}" == "--all" ]] && want_all=true

die() {
  printf '\nsmart-parking: %s\n\n' "$1" >&2
  exit 1
}
say() { printf 'smart-parking: %s\n' "$1" >&2; }

# One lock for the whole install: `npm start` and `npm test` may race on a fresh machine.
exec 9>"$CACHE/install.lock"
flock 9

need() {
  command -v "$1" >/dev/null 2>&1 || die "$2"
}

apt_packages=()
command -v redis-server >/dev/null 2>&1 || apt_packages+=(redis-server)
command -v mosquitto >/dev/null 2>&1 || apt_packages+=(mosquitto)
command -v mosquitto_ctrl >/dev/null 2>&1 || apt_packages+=(mosquitto-clients)
# The console's browser test drives Debian's chromium (playwright-core cannot download a browser here).
if $want_all; then
  [[ -x /usr/bin/chromium ]] || apt_packages+=(chromium)
  [[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || apt_packages+=(fonts-dejavu-core)
fi
if ((${#apt_packages[@]})); then
  need apt-get "missing ${apt_packages[*]}: install them with your package manager (Debian: apt-get install ${apt_packages[*]})"
  [[ $(id -u) == 0 ]] || die "missing ${apt_packages[*]}: run 'sudo apt-get install -y ${apt_packages[*]}' once, then try again"
  say "installing ${apt_packages[*]} (apt)"
  # A policy-rc.d keeps the packages' system services from starting: the platform runs its own.
  # An existing one is left as it is.
  ours_policy=false
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && ours_policy=true
  fi
  ok=true
  { apt-get install -y --no-install-recommends "${apt_packages[@]}" >"$CACHE/apt.log" 2>&1 ||
    { apt-get update >>"$CACHE/apt.log" 2>&1 && apt-get install -y --no-install-recommends "${apt_packages[@]}" >>"$CACHE/apt.log" 2>&1; }; } || ok=false
  $ours_policy && rm -f /usr/sbin/policy-rc.d
  $ok || die "apt-get install ${apt_packages[*]} failed; see $CACHE/apt.log"
fi

# go install of one module version into its own cached directory.
go_tool() { # name version module
  local dir="$TOOLS/$1-$2"
  [[ -x "$dir/$1" ]] && return 0
  need go "building $1 needs the Go toolchain (https://go.dev/dl/, or apt-get install golang); then run this again"
  say "building $1 $2 from the Go module proxy (once, cached in $dir)"
  mkdir -p "$dir.tmp"
  GOBIN="$dir.tmp" CGO_ENABLED=0 go install "$3@$2" >"$CACHE/$1.log" 2>&1 || die "building $1 failed; see $CACHE/$1.log"
  mv "$dir.tmp" "$dir"
}

install_ferretdb() {
  local dir="$TOOLS/ferretdb-$FERRETDB_VERSION"
  [[ -x "$dir/ferretdb" ]] && return 0
  need go "building FerretDB needs the Go toolchain (https://go.dev/dl/, or apt-get install golang); then run this again"
  say "building FerretDB $FERRETDB_VERSION (once, about 80 s, cached in $dir)"
  local src
  src=$(go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",\?$/\1/p')
  [[ -n "$src" && -d "$src" ]] || die "could not download the FerretDB module"
  local work="$CACHE/build/ferretdb-$FERRETDB_VERSION"
  rm -rf "$work" && mkdir -p "$work" && cp -r "$src/." "$work" && chmod -R u+w "$work"
  # A plain `go install` leaves version.txt empty and the binary panics at start.
  echo "$FERRETDB_VERSION" >"$work/build/version/version.txt"
  mkdir -p "$dir.tmp"
  (cd "$work" && CGO_ENABLED=0 go build -o "$dir.tmp/ferretdb" ./cmd/ferretdb) >"$CACHE/ferretdb.log" 2>&1 ||
    die "building FerretDB failed; see $CACHE/ferretdb.log"
  mv "$dir.tmp" "$dir"
  rm -rf "$work"
}

install_schemathesis() {
  local dir="$TOOLS/schemathesis-$SCHEMATHESIS_VERSION"
  [[ -f "$dir/.installed" ]] && return 0
  need python3 "the API fuzzing step needs Python 3 with venv (apt-get install python3 python3-venv)"
  say "installing schemathesis $SCHEMATHESIS_VERSION into a virtual environment (once, cached in $dir)"
  # A venv hard-codes its own path in its scripts, so it is built in place; the marker file
  # written last tells a finished install from an interrupted one.
  rm -rf "$dir"
  { python3 -m venv "$dir" && "$dir/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"; } \
    >"$CACHE/schemathesis.log" 2>&1 || die "installing schemathesis failed (python3-venv missing?); see $CACHE/schemathesis.log"
  touch "$dir/.installed"
}

install_ferretdb
# npm start runs payments against an embedded stripe-mock when no Stripe is configured.
go_tool stripe-mock "$STRIPE_MOCK_VERSION" github.com/stripe/stripe-mock
if $want_all; then
  go_tool versitygw "$VERSITYGW_VERSION" github.com/versity/versitygw/cmd/versitygw
  install_schemathesis
  # It prints the binary's path, which callers here do not need; its messages go to stderr.
  bash "$(dirname "${BASH_SOURCE[0]}")/../loadtest/build-k6.sh" >/dev/null
fi
