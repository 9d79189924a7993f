#!/usr/bin/env bash
# Install Debian 12's PostgreSQL 15 server and client programs into .tools/postgresql/ (gitignored),
# for the throwaway test server scripts/postgres.sh starts when no PostgreSQL answers.
#
# Why this way:
#  * Same as scripts/fetch-monitoring.sh: only Debian's registry is reachable, and `apt-get install`
#    would run maintainer scripts (create a cluster, start a service, write /etc). We only need the
#    files, so the .debs are fetched with `apt-get download` and unpacked with `dpkg -x`: nothing is
#    installed system-wide and dpkg's database is untouched.
#  * Debian's build is relocatable: postgres and initdb find their share/ and lib/ directories relative
#    to their own binary, so the unpacked tree runs where it is.
#  * The shared libraries the programs need that this machine lacks (a fresh Debian image has no
#    libpq5, libicu72, libxml2, ...) are found with ldd, and the library packages among the missing
#    dependencies of postgresql-15 / postgresql-client-15 are unpacked into the same tree; callers run
#    the programs with LD_LIBRARY_PATH set to the directory printed on the second line. libllvm14 is
#    left out (only the optional JIT loads it; the test server runs with jit=off).
#
# Usage: scripts/fetch-postgresql.sh
#   Quiet on success; prints exactly two lines at the end:
#     <repo>/.tools/postgresql/root/usr/lib/postgresql/15/bin     (initdb, pg_ctl, postgres, psql, pg_isready)
#     <repo>/.tools/postgresql/lib                                (for LD_LIBRARY_PATH; may be empty)
#   Re-running is cheap: it does nothing if the tree is already installed (a stamp file written last
#   marks a finished install). Set FETCH_POSTGRESQL_FORCE=1 to reinstall.
#   FETCH_POSTGRESQL_ALL_LIBS=1 also unpacks the library packages this machine does have, which is how
#   the fresh-machine path can be tried on a machine that has them (then FETCH_POSTGRESQL_FORCE=1 again).
#
# Requirements: Debian 12 (bookworm) with apt, dpkg and ldd (libc-bin), all present on a fresh Debian 12
# image. On a fresh machine the package lists may be empty, in which case `apt-get update` runs (root).

set -euo pipefail

PG_MAJOR=15
PG_SERIES="$PG_MAJOR."   # expected Debian version prefix of postgresql-15
PG_PACKAGES=("postgresql-$PG_MAJOR" "postgresql-client-$PG_MAJOR")
# The programs scripts/postgres.sh runs; each must find all its shared libraries.
PG_PROGRAMS=(initdb pg_ctl postgres psql pg_isready)

repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
dest="$repo/.tools/postgresql"
root="$dest/root"
libdir="$dest/lib"
bin="$root/usr/lib/postgresql/$PG_MAJOR/bin"
stamp="$dest/.installed-$PG_MAJOR"

die() {
    echo "fetch-postgresql.sh: error: $*" >&2
    exit 1
}

# Print a captured log to stderr (only on failure: we are quiet on success).
dump_log() {
    [ -s "$1" ] && sed 's/^/    | /' "$1" >&2
    return 0
}

installed() {
    local p
    [ -f "$stamp" ] && [ -d "$libdir" ] || return 1
    for p in "${PG_PROGRAMS[@]}"; do
        [ -x "$bin/$p" ] || return 1
    done
}

if [ "${FETCH_POSTGRESQL_FORCE:-0}" != 1 ] && installed; then
    printf '%s\n%s\n' "$bin" "$libdir"
    exit 0
fi

for tool in apt-get apt-cache dpkg dpkg-deb dpkg-query ldd; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "'$tool' not found; this script needs a Debian 12 system (apt, dpkg, libc-bin)"
done

tmp="$(mktemp -d "${TMPDIR:-/tmp}/fetch-postgresql.XXXXXX")" || die "mktemp failed"
stage=""
cleanup() {
    rm -rf -- "$tmp"
    [ -z "$stage" ] || rm -rf -- "$stage"
}
trap cleanup EXIT
log="$tmp/log"
mkdir "$tmp/debs"

# See scripts/fetch-monitoring.sh: as root, apt's `_apt` sandbox user cannot write into our 0700 dir.
apt_opts=()
if [ "$(id -u)" = 0 ]; then
    apt_opts=(-o APT::Sandbox::User=root)
fi

download() {
    (cd "$tmp/debs" && apt-get -q "${apt_opts[@]}" download "$@") >>"$log" 2>&1
}

if ! download "${PG_PACKAGES[@]}"; then
    # Most likely a fresh machine whose package lists were never fetched. Refresh once and retry.
    if [ "$(id -u)" != 0 ]; then
        dump_log "$log"
        die "apt-get download failed; run 'apt-get update' as root (or run this script as root) and retry"
    fi
    if ! apt-get -q update >>"$log" 2>&1; then
        dump_log "$log"
        die "apt-get update failed (is Debian's package mirror reachable?)"
    fi
    rm -f -- "$tmp"/debs/*.deb
    if ! download "${PG_PACKAGES[@]}"; then
        dump_log "$log"
        die "apt-get download ${PG_PACKAGES[*]} failed even after apt-get update (not Debian 12?)"
    fi
fi

server_debs=("$tmp/debs/postgresql-${PG_MAJOR}"_*.deb)
[ -f "${server_debs[0]}" ] || die "apt-get download did not produce postgresql-${PG_MAJOR}_*.deb"
pg_ver="$(dpkg-deb -f "${server_debs[0]}" Version)"
case "$pg_ver" in "$PG_SERIES"*) ;; *) die "expected postgresql-$PG_MAJOR ${PG_SERIES}x, apt offered '$pg_ver'" ;; esac

# Unpack into a staging dir and rename it into place at the end, so an interrupted run never leaves a
# half-extracted tree behind.
mkdir -p "$dest"
stage="$(mktemp -d "$dest/.stage.XXXXXX")"
mkdir "$stage/lib"
unpack() {
    local deb
    for deb in "$@"; do
        # dpkg -x only unpacks the data archive: no maintainer scripts, no dpkg database.
        if ! dpkg -x "$deb" "$stage/root" >>"$log" 2>&1; then
            dump_log "$log"
            die "dpkg -x $(basename -- "$deb") failed"
        fi
    done
}
unpack "$tmp"/debs/*.deb

# The libraries the programs cannot find, as ldd reports them ("libfoo.so.1 => not found").
missing_libs() {
    local p
    for p in "${PG_PROGRAMS[@]}"; do
        LD_LIBRARY_PATH="$stage/lib" ldd "$stage/root/usr/lib/postgresql/$PG_MAJOR/bin/$p" 2>>"$log" || true
    done | awk '$2 == "=>" && $3 == "not" { print $1 }' | sort -u
}

is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

# The library packages among the dependencies of the given packages (recursively) that this machine
# does not have (or all of them, with FETCH_POSTGRESQL_ALL_LIBS=1). Installed packages are not
# descended into: their own dependencies are installed already.
missing_lib_packages() {
    local -A seen=()
    local layer=("$@") next dep
    while [ "${#layer[@]}" -gt 0 ]; do
        next=()
        while read -r dep; do
            case "$dep" in
            libllvm* | libz3-* | libperl* | lib*-perl) continue ;; # JIT only / perl tooling only
            libc6 | libc-*) continue ;; # always there, and must match the system's dynamic loader
            lib*) ;;
            *) continue ;;
            esac
            [ -z "${seen[$dep]:-}" ] || continue
            seen[$dep]=1
            if [ "${FETCH_POSTGRESQL_ALL_LIBS:-0}" = 1 ] || ! is_installed "$dep"; then
                next+=("$dep")
                echo "$dep"
            fi
        done < <(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
            --no-replaces --no-enhances "${layer[@]}" 2>>"$log" |
            sed -n 's/^ *|\{0,1\}Depends: \([^<][^ ]*\)$/\1/p' | sed 's/:any$//')
        layer=("${next[@]}")
    done
}

missing="$(missing_libs)"
if [ -n "$missing" ] || [ "${FETCH_POSTGRESQL_ALL_LIBS:-0}" = 1 ]; then
    mapfile -t lib_pkgs < <(missing_lib_packages "${PG_PACKAGES[@]}")
    if [ "${#lib_pkgs[@]}" -gt 0 ]; then
        mkdir "$tmp/libdebs"
        if ! (cd "$tmp/libdebs" && apt-get -q "${apt_opts[@]}" download "${lib_pkgs[@]}") >>"$log" 2>&1; then
            dump_log "$log"
            die "apt-get download of the libraries PostgreSQL needs failed: ${lib_pkgs[*]}"
        fi
        unpack "$tmp"/libdebs/*.deb
        # Debian 12 is merged-/usr, but packages still ship some libraries under /lib: gather every
        # unpacked shared library (of this architecture's multiarch directories) into one directory.
        find "$stage/root/usr/lib" "$stage/root/lib" -mindepth 2 -maxdepth 2 \
            -path '*-linux-gnu*/*.so*' \( -type f -o -type l \) \
            -exec ln -sfr -t "$stage/lib" {} + 2>>"$log" || true
    fi
    missing="$(missing_libs)"
    [ -z "$missing" ] || die "PostgreSQL's programs still miss shared libraries: $(echo "$missing" | tr '\n' ' ')"
fi

rm -f -- "$stamp"
rm -rf -- "$root" "${libdir:?}"
mv -- "$stage/root" "$root"
mv -- "$stage/lib" "$libdir"
rmdir -- "$stage"
stage=""
echo "$pg_ver" >"$stamp"

installed || die "install finished but the expected files are missing under $dest"
printf '%s\n%s\n' "$bin" "$libdir"
