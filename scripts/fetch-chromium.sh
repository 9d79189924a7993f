#!/usr/bin/env bash
# Installs Debian's Chromium for the web UI's browser tests (tests/web.rs drives it headless over the
# Chrome DevTools Protocol), only when /usr/bin/chromium is missing.
#
# Why this way:
#  * The tests need a real browser: they check what people see (escaping, the Content-Security-Policy,
#    live updates over EventSource, cookies) in the engine most people use.
#  * Debian's package is the one registry reachable here, and `chromium` brings its libraries along.
#    `--no-install-recommends` keeps it to the browser (no fonts and extras beyond what it needs).
#  * Unlike the other tools, Chromium cannot be unpacked into .tools/: it needs its shared libraries
#    installed system-wide, so this uses apt-get install (as root; CI is root).
#
# Usage: scripts/fetch-chromium.sh
#   Prints nothing when Chromium is already there. TOCSIN_CHROMIUM points the tests at another binary.

set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    exit 0
fi

die() {
    echo "fetch-chromium.sh: error: $*" >&2
    exit 1
}

command -v apt-get >/dev/null || die "apt-get not found: install Chromium yourself and set TOCSIN_CHROMIUM"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "installing Chromium needs root (or sudo)"
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# Fresh images have empty package lists.
if ! apt-cache show chromium >/dev/null 2>&1; then
    $sudo apt-get update -qq
fi
$sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
[ -x /usr/bin/chromium ] || die "apt-get finished but /usr/bin/chromium is still missing"
