#!/usr/bin/env bash
# Install Debian 12's real Prometheus 2.42 and Alertmanager 0.25 binaries into
# .tools/monitoring/ (gitignored) for tocsin's integration tests.
#
# Why this way:
#  * Only Debian's package registry is reachable (no upstream release tarballs),
#    so the binaries come from the `prometheus` / `prometheus-alertmanager` .debs.
#  * `apt-get install` would run maintainer scripts (create system users, enable
#    services, write /etc and /var/lib). We only need the files, so we
#    `apt-get download` the .debs and unpack them with `dpkg -x`: nothing is
#    installed system-wide and dpkg's database is untouched.
#
# Usage: scripts/fetch-monitoring.sh
#   Quiet on success; prints exactly two lines at the end:
#     <repo>/.tools/monitoring/root/usr/bin/prometheus
#     <repo>/.tools/monitoring/root/usr/bin/prometheus-alertmanager
#   Re-running is cheap: it does nothing if the tree is already installed.
#   Set FETCH_MONITORING_FORCE=1 to reinstall.
#
# Alertmanager pitfall (Debian patch 02-Do_not_embed_blobs): Debian's build
# does NOT embed the default notification templates; the binary opens the
# hard-coded absolute path /usr/share/prometheus/alertmanager/default.tmpl on
# every config load and refuses to start without it (no flag, `templates:`
# entry or working directory changes that). So this script also writes
#     <repo>/.tools/monitoring/bin/prometheus-alertmanager
# a launcher taking the same flags, which runs the real binary in a private
# mount namespace where /usr/share is overlaid with the extracted package's
# /usr/share. Nothing is written outside the repo, and the launcher `exec`s all
# the way down, so its PID *is* Alertmanager's PID (signals reach it directly).
# Needs root (CI is root) or, for non-root users, unprivileged user namespaces.
#
# Requirements: Debian 12 (bookworm) with apt, dpkg, util-linux (unshare) and
# mount -- all present on a fresh Debian 12 image. Run as root on a fresh
# machine: the package lists may be empty, in which case `apt-get update` runs.

set -euo pipefail

PROM_SERIES='2.42.'   # expected Debian version prefix of `prometheus`
AM_SERIES='0.25.'     # expected Debian version prefix of `prometheus-alertmanager`

repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
dest="$repo/.tools/monitoring"
root="$dest/root"
prom="$root/usr/bin/prometheus"
am="$root/usr/bin/prometheus-alertmanager"
am_tmpl="$root/usr/share/prometheus/alertmanager/default.tmpl"
launcher="$dest/bin/prometheus-alertmanager"

die() {
    echo "fetch-monitoring.sh: error: $*" >&2
    exit 1
}

# Print a captured log to stderr (only on failure: we are quiet on success).
dump_log() {
    [ -s "$1" ] && sed 's/^/    | /' "$1" >&2
    return 0
}

installed() {
    [ -x "$prom" ] && [ -x "$am" ] && [ -r "$am_tmpl" ] && [ -x "$launcher" ]
}

if [ "${FETCH_MONITORING_FORCE:-0}" != 1 ] && installed; then
    printf '%s\n%s\n' "$prom" "$am"
    exit 0
fi

for tool in apt-get dpkg dpkg-deb unshare mount; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "'$tool' not found; this script needs a Debian 12 system (apt, dpkg, util-linux, mount)"
done

# The overlay mount option string uses ':' and ',' as separators.
case "$root" in
*[:,]*) die "repository path '$repo' contains ':' or ',', which overlayfs cannot take" ;;
esac

tmp="$(mktemp -d "${TMPDIR:-/tmp}/fetch-monitoring.XXXXXX")" || die "mktemp failed"
stage=""
cleanup() {
    rm -rf -- "$tmp"
    [ -z "$stage" ] || rm -rf -- "$stage"
}
trap cleanup EXIT
log="$tmp/log"

# As root, apt drops privileges to the `_apt` user for downloads, which cannot
# write into our 0700 mktemp dir; apt then falls back to root anyway and prints
# a "W: Download is performed unsandboxed" warning. Asking for root directly
# does the same download without the noise.
apt_opts=()
if [ "$(id -u)" = 0 ]; then
    apt_opts=(-o APT::Sandbox::User=root)
fi

download() {
    (cd "$tmp" && apt-get -q "${apt_opts[@]}" download prometheus prometheus-alertmanager) >>"$log" 2>&1
}

if ! download; then
    # Most likely a fresh machine/container whose package lists were never
    # fetched ("Unable to locate package"). Refresh once and retry; only this
    # path touches system state (/var/lib/apt/lists), and only as root.
    if [ "$(id -u)" != 0 ]; then
        dump_log "$log"
        die "apt-get download failed; run 'apt-get update' as root (or run this script as root) and retry"
    fi
    if ! apt-get -q update >>"$log" 2>&1; then
        dump_log "$log"
        die "apt-get update failed (is Debian's package mirror reachable?)"
    fi
    rm -f -- "$tmp"/*.deb
    if ! download; then
        dump_log "$log"
        die "apt-get download prometheus prometheus-alertmanager failed even after apt-get update (Debian mirror unreachable, or not Debian 12? see apt output above)"
    fi
fi

# apt names the files <pkg>_<version>_<arch>.deb; the version is not pinned
# here (Debian may ship a security update), only checked below.
prom_debs=("$tmp"/prometheus_*.deb)
am_debs=("$tmp"/prometheus-alertmanager_*.deb)
prom_deb="${prom_debs[0]}"
am_deb="${am_debs[0]}"
if [ ! -f "$prom_deb" ] || [ ! -f "$am_deb" ]; then
    dump_log "$log"
    die "apt-get download did not produce both .deb files"
fi

# Tests are written against these release series' behaviour (flags, API v2
# payloads); fail loudly rather than silently test against something else.
prom_ver="$(dpkg-deb -f "$prom_deb" Version)"
am_ver="$(dpkg-deb -f "$am_deb" Version)"
case "$prom_ver" in "$PROM_SERIES"*) ;; *) die "expected prometheus ${PROM_SERIES}x from Debian 12, apt offered '$prom_ver'" ;; esac
case "$am_ver" in "$AM_SERIES"*) ;; *) die "expected prometheus-alertmanager ${AM_SERIES}x from Debian 12, apt offered '$am_ver'" ;; esac

# Unpack into a staging dir next to the final location and rename it into place
# at the end, so an interrupted run never leaves a half-extracted tree that the
# idempotency check above would mistake for a finished install.
mkdir -p "$dest"
stage="$(mktemp -d "$dest/.stage.XXXXXX")"
for deb in "$prom_deb" "$am_deb"; do
    # dpkg -x only unpacks the data archive: no preinst/postinst, no dpkg db.
    if ! dpkg -x "$deb" "$stage/root" >>"$log" 2>&1; then
        dump_log "$log"
        die "dpkg -x $(basename "$deb") failed"
    fi
done
for f in usr/bin/prometheus usr/bin/prometheus-alertmanager; do
    [ -x "$stage/root/$f" ] || die "$(basename "$f") missing from the unpacked packages"
done
[ -r "$stage/root/usr/share/prometheus/alertmanager/default.tmpl" ] ||
    die "default.tmpl missing from the unpacked prometheus-alertmanager package"

# Alertmanager launcher (see the header comment). It locates the tree relative
# to itself, so the whole .tools/monitoring directory can be moved.
mkdir -p "$stage/bin"
cat >"$stage/bin/prometheus-alertmanager" <<'LAUNCHER'
#!/bin/sh
# Generated by scripts/fetch-monitoring.sh -- runs Debian's prometheus-alertmanager
# with the same arguments. Debian's build hard-codes
# /usr/share/prometheus/alertmanager/default.tmpl; instead of installing that
# file system-wide we give the process a private mount namespace in which
# /usr/share is an overlay of the unpacked package's usr/share on top of the
# real one. Every step `exec`s, so this script's PID becomes Alertmanager's.
set -eu
self="$(readlink -f -- "$0")"
root="$(dirname -- "$(dirname -- "$self")")/root"
bin="$root/usr/bin/prometheus-alertmanager"
tmpl=/usr/share/prometheus/alertmanager/default.tmpl

if [ "${TOCSIN_AM_NS:-}" != 1 ]; then
    # Not root: a user namespace (mapped to root) grants the mount privilege.
    userns=""
    [ "$(id -u)" = 0 ] || userns="--map-root-user"
    if unshare --mount $userns true 2>/dev/null; then
        TOCSIN_AM_NS=1 exec unshare --mount --propagation private $userns -- "$self" "$@"
    fi
    # No namespaces allowed here: usable only if the template is installed.
    [ -r "$tmpl" ] && exec "$bin" "$@"
    echo "prometheus-alertmanager launcher: cannot create a mount namespace (unshare) and $tmpl does not exist;" >&2
    echo "  either allow unshare, or copy $root$tmpl to $tmpl" >&2
    exit 1
fi
unset TOCSIN_AM_NS
if ! mount -t overlay tocsin-alertmanager -o "lowerdir=$root/usr/share:/usr/share" /usr/share; then
    [ -r "$tmpl" ] && exec "$bin" "$@"
    echo "prometheus-alertmanager launcher: overlay mount over /usr/share failed and $tmpl does not exist" >&2
    exit 1
fi
exec "$bin" "$@"
LAUNCHER
chmod 0755 "$stage/bin/prometheus-alertmanager"

rm -rf -- "$root" "${dest:?}/bin"
mv -- "$stage/root" "$root"
mv -- "$stage/bin" "$dest/bin"
rmdir -- "$stage"
stage=""

installed || die "install finished but the expected files are missing under $dest"
printf '%s\n%s\n' "$prom" "$am"
