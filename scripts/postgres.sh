#!/usr/bin/env bash
# shellcheck shell=bash
# Gives the tests a real PostgreSQL: decides the admin URL the tests use and exports it as
# TOCSIN_TEST_POSTGRES (tests/common/pg.rs reads it and makes one database per test from there).
#
#   1. TOCSIN_TEST_POSTGRES set to a URL: that server, as is (not checked here).
#   2. Otherwise postgres://postgres@127.0.0.1:5432/test when it answers (a login with psql when psql
#      is installed, else pg_isready, else a TCP connect).
#   3. Otherwise, or when TOCSIN_TEST_POSTGRES=throwaway (forces this path even if 5432 answers): a
#      throwaway server. Debian's postgresql-15 is unpacked into .tools/postgresql
#      (scripts/fetch-postgresql.sh), a fresh cluster is made with initdb in .tools/postgresql/run.<pid>
#      (trust auth, superuser postgres, UTF8), and started on a free port on 127.0.0.1 with its unix
#      socket in a private temporary directory; TOCSIN_TEST_POSTGRES becomes
#      postgres://postgres@127.0.0.1:<port>/postgres. When the shell that started it exits (normally,
#      on failure, on Ctrl-C or SIGTERM) it is stopped (pg_ctl stop -m fast) and its directory deleted.
#      Clusters left by runs that were killed outright (SIGKILL) are stopped and deleted by the next run.
#
# PostgreSQL refuses to run as root. As root, the server runs as the `nobody` user (setpriv), or, when
# nobody cannot reach the repository (say it lives under /root), in a user namespace where root is
# mapped to nobody (unshare --user), which needs no access for another user.
#
# Usage:
#   source scripts/postgres.sh        what scripts/test does: the server lives as long as that shell, and
#                                     this sets the shell's EXIT, INT, TERM and HUP traps.
#   scripts/postgres.sh CMD [ARG...]  runs CMD with TOCSIN_TEST_POSTGRES set, then stops the server;
#                                     exits with CMD's status.
#   scripts/postgres.sh               prints the URL; a throwaway server then runs until Ctrl-C.

_tpg_repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
_tpg_dest="$_tpg_repo/.tools/postgresql"
_tpg_default_url='postgres://postgres@127.0.0.1:5432/test'
_tpg_bin=""
_tpg_libdir=""
_tpg_run=""
_tpg_sock=""
_tpg_as=()

_tpg_die() {
    echo "postgres.sh: error: $*" >&2
    exit 1
}

# Whether the default server answers and lets us in.
_tpg_default_answers() {
    if command -v psql >/dev/null 2>&1; then
        PGCONNECT_TIMEOUT=3 psql -X -q -At -d "$_tpg_default_url" -c 'select 1' >/dev/null 2>&1
    elif command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -t 3 -d "$_tpg_default_url"
    else
        timeout 3 bash -c ': <>/dev/tcp/127.0.0.1/5432' 2>/dev/null
    fi
}

# Runs one of the unpacked PostgreSQL programs (as the unprivileged user when we are root).
_tpg_pg() {
    (cd / && "${_tpg_as[@]}" env LD_LIBRARY_PATH="$_tpg_libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@")
}

# Whether something listens on 127.0.0.1:$1.
_tpg_port_taken() {
    timeout 2 bash -c ": <>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# Stops the postmaster whose pid is on the first line of $1/postmaster.pid (fast shutdown, then
# immediate, bounded), without pg_ctl: works for clusters of any earlier run, whoever they ran as.
_tpg_kill_postmaster() {
    local pid i
    [ -f "$1/postmaster.pid" ] || return 0
    pid="$(head -n 1 "$1/postmaster.pid" 2>/dev/null)" || return 0
    case "$pid" in '' | *[!0-9]*) return 0 ;; esac
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = postgres ] || return 0
    kill -INT "$pid" 2>/dev/null || return 0
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        [ "$i" != 50 ] || kill -QUIT "$pid" 2>/dev/null || true
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

# Clusters of earlier runs whose shell is gone (killed with SIGKILL, machine reset): stop and delete.
_tpg_reap_stale() {
    local dir owner
    for dir in "$_tpg_dest"/run.*; do
        [ -d "$dir" ] || continue
        owner="${dir##*.}"
        [ "$owner" != "$$" ] || continue
        ! kill -0 "$owner" 2>/dev/null || continue
        _tpg_kill_postmaster "$dir/data"
        [ ! -f "$dir/socket-dir" ] || rm -rf -- "$(cat "$dir/socket-dir")"
        rm -rf -- "$dir"
    done
}

# Stops the throwaway server and deletes its directories. Runs from the EXIT trap: never fails.
_tpg_stop() {
    if [ -n "$_tpg_run" ]; then
        if [ -f "$_tpg_run/data/postmaster.pid" ]; then
            _tpg_pg pg_ctl stop -D "$_tpg_run/data" -m fast -w -t 30 >/dev/null 2>&1 ||
                _tpg_kill_postmaster "$_tpg_run/data" || true
        fi
        rm -rf -- "$_tpg_run" || true
        _tpg_run=""
    fi
    if [ -n "$_tpg_sock" ]; then
        rm -rf -- "$_tpg_sock" || true
        _tpg_sock=""
    fi
}

# Picks how to run PostgreSQL's programs: as ourselves, or as nobody when we are root.
_tpg_choose_user() {
    local uid gid
    _tpg_as=()
    [ "$(id -u)" = 0 ] || return 0
    if ! uid="$(id -u nobody 2>/dev/null)" || ! gid="$(id -g nobody 2>/dev/null)"; then
        _tpg_die "running as root and there is no 'nobody' user to run PostgreSQL as"
    fi
    # shellcheck disable=SC2016 # $1 and $2 are the inner shell's arguments
    if setpriv --reuid="$uid" --regid="$gid" --clear-groups -- \
        sh -c 'test -x "$1" && test -x "$2"' sh "$_tpg_bin/postgres" "$_tpg_dest" 2>/dev/null; then
        _tpg_as=(setpriv --reuid="$uid" --regid="$gid" --clear-groups --)
    elif unshare --user --map-user="$uid" --map-group="$gid" -- true 2>/dev/null; then
        _tpg_as=(unshare --user --map-user="$uid" --map-group="$gid" --)
    else
        _tpg_die "running as root: PostgreSQL must run as another user, but 'nobody' cannot reach" \
            "$_tpg_dest and user namespaces (unshare --user) are not allowed here; run as a normal user," \
            "or make the repository's parent directories searchable by others (chmod o+x)"
    fi
}

_tpg_start_throwaway() {
    local out log port try tz opts
    out="$("$_tpg_repo/scripts/fetch-postgresql.sh")" || _tpg_die "could not install PostgreSQL into $_tpg_dest"
    _tpg_bin="$(sed -n 1p <<<"$out")"
    _tpg_libdir="$(sed -n 2p <<<"$out")"
    _tpg_choose_user
    _tpg_reap_stale

    trap _tpg_stop EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    _tpg_run="$_tpg_dest/run.$$"
    rm -rf -- "$_tpg_run"
    mkdir -p -- "$_tpg_run"
    _tpg_sock="$(mktemp -d "${TMPDIR:-/tmp}/tocsin-pg.XXXXXX")" || _tpg_die "mktemp failed"
    echo "$_tpg_sock" >"$_tpg_run/socket-dir"
    if [ "${_tpg_as[0]:-}" = setpriv ]; then
        chown "$(id -u nobody):$(id -g nobody)" "$_tpg_run" "$_tpg_sock"
    fi
    log="$_tpg_run/log"

    # Fixed time zone and C locale: the same results on every machine.
    tz=UTC
    [ -e /usr/share/zoneinfo/UTC ] || tz=GMT
    if ! TZ="$tz" _tpg_pg "$_tpg_bin/initdb" -D "$_tpg_run/data" -U postgres --auth=trust \
        --encoding=UTF8 --no-locale --no-sync >"$_tpg_run/initdb.log" 2>&1; then
        sed 's/^/    | /' "$_tpg_run/initdb.log" >&2
        _tpg_die "initdb failed"
    fi

    # A free port: a random one nothing listens on; if another process takes it before the server
    # binds, try another. Throwaway data, so durability is off (fsync, full page writes, JIT).
    for try in 1 2 3 4 5 6 7 8; do
        port=$((15000 + RANDOM % 15000))
        ! _tpg_port_taken "$port" || continue
        [ ! -f "$log" ] || : >"$log"
        opts="-c listen_addresses=127.0.0.1 -p $port -k '$_tpg_sock' -c max_connections=200"
        opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c jit=off"
        if _tpg_pg "$_tpg_bin/pg_ctl" start -D "$_tpg_run/data" -l "$log" -w -t 60 -o "$opts" \
            >>"$_tpg_run/pg_ctl.log" 2>&1; then
            break
        fi
        if [ "$try" = 8 ] || ! grep -q -e 'could not bind' -e 'already in use' "$log" 2>/dev/null; then
            cat "$_tpg_run/pg_ctl.log" "$log" 2>/dev/null | sed 's/^/    | /' >&2
            _tpg_die "the throwaway PostgreSQL server did not start"
        fi
        _tpg_pg "$_tpg_bin/pg_ctl" stop -D "$_tpg_run/data" -m immediate >/dev/null 2>&1 || true
    done

    # pg_ctl -w waits for the postmaster; wait (bounded) until it answers over TCP too, as the tests connect.
    for try in $(seq 1 100); do
        if _tpg_pg "$_tpg_bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; then
            export TOCSIN_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/postgres"
            return 0
        fi
        sleep 0.1
    done
    sed 's/^/    | /' "$log" >&2
    _tpg_die "the throwaway PostgreSQL server on port $port does not answer"
}

_tpg_main() {
    case "${TOCSIN_TEST_POSTGRES:-}" in
    throwaway) _tpg_start_throwaway ;;
    '')
        if _tpg_default_answers; then
            export TOCSIN_TEST_POSTGRES="$_tpg_default_url"
        else
            _tpg_start_throwaway
        fi
        ;;
    *) export TOCSIN_TEST_POSTGRES ;;
    esac
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
    _tpg_main
else
    set -euo pipefail
    _tpg_main
    if [ "$#" -gt 0 ]; then
        set +e
        "$@"
        _tpg_status=$?
        set -e
        exit "$_tpg_status"
    fi
    echo "$TOCSIN_TEST_POSTGRES"
    if [ -n "$_tpg_run" ]; then
        echo "postgres.sh: throwaway server running; Ctrl-C stops it" >&2
        while :; do sleep 3600; done
    fi
fi
