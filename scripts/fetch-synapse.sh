#!/usr/bin/env bash
# Installs Synapse (the Matrix reference homeserver, from PyPI) into .tools/synapse/venv for the tests
# that talk to a real Matrix server (tests/common/synapse.rs starts it).
#
# Why this way:
#  * PyPI is the only registry that has a Matrix homeserver (Debian 12 ships none, crates.io and npm
#    have nothing that runs). Synapse's Rust extension comes as a prebuilt wheel, so no toolchain runs.
#  * The version is pinned: the tests read Synapse's answers (error codes, rate-limit bodies, relation
#    endpoints) and must not silently start testing against another release.
#  * A venv keeps it out of the system Python. Venvs hard-code their own path in their scripts, so it is
#    built in place; a stamp file written last marks a finished install, and anything without the stamp
#    is thrown away and rebuilt, so an interrupted run never looks finished.
#
# Usage: scripts/fetch-synapse.sh
#   Prints nothing on success. Re-running is quick: it does nothing when the pinned version is installed.
#   Set FETCH_SYNAPSE_FORCE=1 to reinstall, PYTHON to pick the interpreter (default python3, >= 3.10).

set -euo pipefail

SYNAPSE_VERSION='1.163.2'

repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
dest="$repo/.tools/synapse"
venv="$dest/venv"
stamp="$venv/.tocsin-synapse-$SYNAPSE_VERSION"
python="${PYTHON:-python3}"

die() {
    echo "fetch-synapse.sh: error: $*" >&2
    exit 1
}

# Print a captured log to stderr (only on failure: we are quiet on success).
dump_log() {
    [ -s "$1" ] && sed 's/^/    | /' "$1" >&2
    return 0
}

if [ "${FETCH_SYNAPSE_FORCE:-0}" != 1 ] && [ -f "$stamp" ] && [ -x "$venv/bin/python" ]; then
    exit 0
fi

command -v "$python" >/dev/null 2>&1 || die "'$python' not found; Synapse needs CPython 3.10 or newer"
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' ||
    die "'$python' is older than 3.10, which Synapse $SYNAPSE_VERSION does not support"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/fetch-synapse.XXXXXX")" || die "mktemp failed"
trap 'rm -rf -- "$tmp"' EXIT
log="$tmp/log"

rm -rf -- "$venv"
mkdir -p "$dest"
if ! "$python" -m venv "$venv" >>"$log" 2>&1; then
    dump_log "$log"
    die "python -m venv failed (on Debian the python3-venv package provides it)"
fi

pip=("$venv/bin/python" -m pip --disable-pip-version-check --no-input --quiet)
if ! "${pip[@]}" install "matrix-synapse==$SYNAPSE_VERSION" >>"$log" 2>&1; then
    dump_log "$log"
    rm -rf -- "$venv"
    die "pip install matrix-synapse==$SYNAPSE_VERSION failed (is PyPI reachable?)"
fi

# Importing the homeserver module loads the Rust extension too: a wheel that does not fit this machine
# fails here rather than in the middle of a test.
if ! "$venv/bin/python" -c 'import synapse.app.homeserver' >>"$log" 2>&1; then
    dump_log "$log"
    rm -rf -- "$venv"
    die "Synapse installed but does not import"
fi
[ -x "$venv/bin/register_new_matrix_user" ] || die "register_new_matrix_user missing from the venv"

touch -- "$stamp"
