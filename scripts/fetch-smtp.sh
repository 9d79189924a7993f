#!/usr/bin/env bash
# Installs aiosmtpd (a small SMTP server in Python, from PyPI) into .tools/smtp for the tests that send
# real email (tests/common/smtp.rs starts it with a Maildir handler and reads what arrived).
#
# Why this way:
#  * A real SMTP server catches what a stub transport cannot: dot-stuffing, header folding, duplicate
#    Content-Type headers, and how 4xx/5xx answers and refused connections look to lettre.
#  * aiosmtpd is pure Python with one small dependency, installs in about a second and needs no root,
#    unlike postfix or exim. Its `Mailbox` handler writes a Maildir the tests read with mail-parser.
#  * The version is pinned so the tests do not silently start testing against another release (the
#    headers it adds and its error answers are what the tests see).
#  * A venv keeps it out of the system Python. A stamp file written last marks a finished install;
#    anything without the stamp is thrown away and rebuilt, so an interrupted run never looks finished.
#
# Usage: scripts/fetch-smtp.sh
#   Prints nothing on success. Re-running is quick: it does nothing when the pinned version is installed.
#   Set FETCH_SMTP_FORCE=1 to reinstall, PYTHON to pick the interpreter (default python3, >= 3.8).

set -euo pipefail

AIOSMTPD_VERSION='1.4.6'

repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
venv="$repo/.tools/smtp"
stamp="$venv/.tocsin-aiosmtpd-$AIOSMTPD_VERSION"
python="${PYTHON:-python3}"

die() {
    echo "fetch-smtp.sh: error: $*" >&2
    exit 1
}

# Print a captured log to stderr (only on failure: we are quiet on success).
dump_log() {
    [ -s "$1" ] && sed 's/^/    | /' "$1" >&2
    return 0
}

if [ "${FETCH_SMTP_FORCE:-0}" != 1 ] && [ -f "$stamp" ] && [ -x "$venv/bin/python" ]; then
    exit 0
fi

command -v "$python" >/dev/null 2>&1 || die "'$python' not found; aiosmtpd needs CPython 3.8 or newer"
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 8) else 1)' ||
    die "'$python' is older than 3.8, which aiosmtpd $AIOSMTPD_VERSION does not support"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/fetch-smtp.XXXXXX")" || die "mktemp failed"
trap 'rm -rf -- "$tmp"' EXIT
log="$tmp/log"

# Venvs hard-code their own path in their scripts, so it is built in place, never moved.
rm -rf -- "$venv"
mkdir -p "$(dirname -- "$venv")"
if ! "$python" -m venv "$venv" >>"$log" 2>&1; then
    dump_log "$log"
    die "python -m venv failed (on Debian the python3-venv package provides it)"
fi

pip=("$venv/bin/python" -m pip --disable-pip-version-check --no-input --quiet)
if ! "${pip[@]}" install "aiosmtpd==$AIOSMTPD_VERSION" >>"$log" 2>&1; then
    dump_log "$log"
    rm -rf -- "$venv"
    die "pip install aiosmtpd==$AIOSMTPD_VERSION failed (is PyPI reachable?)"
fi

# The tests run `python -m aiosmtpd -c aiosmtpd.handlers.Mailbox`: check both import here, so a broken
# install fails now rather than as a startup timeout in the middle of a test.
if ! "$venv/bin/python" -c 'import aiosmtpd.__main__, aiosmtpd.handlers; aiosmtpd.handlers.Mailbox' >>"$log" 2>&1; then
    dump_log "$log"
    rm -rf -- "$venv"
    die "aiosmtpd installed but does not import"
fi

touch -- "$stamp"
