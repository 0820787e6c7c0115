#!/usr/bin/env bash
# Idempotent machine + repo setup for telecare-backend (Debian 12 "bookworm", run as root).
#
#   scripts/setup.sh          # from any directory; works with CI=true and no stdin
#
# What it does (every step is skipped when already done, so a repeat run takes seconds
# and changes nothing):
#   1. apt packages: Mosquitto, PostgreSQL 15, what building TimescaleDB needs, and Chromium
#      for the console's browser test.
#      `apt-get update` runs only when something is missing.
#   2. PostgreSQL cluster 15/main (created if absent, started if down), trust auth for
#      user postgres on 127.0.0.1 (pg_hba.conf is edited only if a login fails).
#   3. Mosquitto on 127.0.0.1:1883.
#   4. TimescaleDB (Apache-2 edition only), built from Debian trixie's SOURCE package
#      against postgresql-server-dev-15, only when timescaledb.so is not installed yet.
#   5. shared_preload_libraries += timescaledb and max_connections >= 500 via ALTER SYSTEM
#      (one restart, only if either changed) and timescaledb.telemetry_level = off via a conf.d file.
#   6. .venv (python3.11) and `pip install -e '.[dev]' -c constraints.txt` when either changed.
#
# TimescaleDB notes (checked on 2026-11-23):
#   * trixie ships timescaledb 2.19.3+dfsg-1+deb13u1. Its CMakeLists accepts PostgreSQL
#     14..17 and needs CMake >= 3.15, so bookworm's cmake 3.25 and PG 15 are fine. The
#     "+dfsg" tarball has the TSL-licensed tsl/ directory removed, so only the Apache-2
#     code can be built anyway (-DAPACHE_ONLY=1 makes that explicit). Should a later
#     trixie point release drop PG 15, cmake stops with "TimescaleDB only supports
#     PostgreSQL ..."; then pin TSDB_DEB_VERSION below to 2.19.3+dfsg-1+deb13u1
#     (only works while the mirror still serves it).
#   * Debian's packaging builds it with USE_TELEMETRY=OFF; we keep the telemetry code
#     compiled in (upstream default) but default it to off (SEND_TELEMETRY_DEFAULT=OFF)
#     and also set timescaledb.telemetry_level=off, so that setting is a real, checkable
#     GUC in every database with the extension.
#   * The source is fetched with apt using a private sources.list, state and cache under
#     $TELECARE_BUILD_DIR (default /var/cache/telecare-build), so the machine's own apt
#     configuration and package lists are not touched. The deb-src entry is
#     signed-by=/usr/share/keyrings/debian-archive-keyring.gpg: bookworm's
#     debian-archive-keyring (2023.3+deb12u2) already carries the trixie archive and
#     release keys, and apt refuses an InRelease it cannot verify; we additionally
#     check the InRelease signature with gpgv. apt then checks the hashes of the
#     .dsc/.tar files against the signed Sources index.
#   * libkrb5-dev is NOT needed: the build only includes PostgreSQL server headers that
#     do not pull in gssapi (verified by building without it).
#   * ./bootstrap asks an interactive question if build/ exists; BUILD_FORCE_REMOVE=true
#     avoids that (with stdin closed it would otherwise stop without configuring).
#   * Adding timescaledb to shared_preload_libraries restarts the shared cluster once;
#     clients connected at that moment (other checkouts' tests) lose their connections.
set -Eeuo pipefail
shopt -s inherit_errexit
exec </dev/null # never wait for input (CI has no stdin)

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"

export DEBIAN_FRONTEND=noninteractive LC_ALL=C
unset PGOPTIONS PGSERVICE PGSERVICEFILE PGPASSFILE 2>/dev/null || true

PG_MAJOR=15
PG_CLUSTER=main
PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
PG_CONFIG=$PG_BIN/pg_config
PG_DEFAULT_PORT=5432
MQTT_HOST=127.0.0.1
MQTT_PORT=1883
MOSQUITTO_CONF=/etc/mosquitto/mosquitto.conf
BUILD_DIR=${TELECARE_BUILD_DIR:-/var/cache/telecare-build}
TSDB_SUITE=trixie
TSDB_DEB_VERSION=${TSDB_DEB_VERSION:-} # empty = newest in trixie
DEBIAN_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
PYTHON=${PYTHON:-python3.11}
VENV=$REPO_ROOT/.venv
VENV_STAMP=$VENV/.telecare-installed
READY_TIMEOUT=60 # seconds to wait for a service to come up

APT_PACKAGES=(
    # services
    mosquitto mosquitto-clients postgresql-15 postgresql-contrib
    # TimescaleDB build: headers + pg_config (pulls libpq-dev, clang-14, llvm-14-dev),
    # compiler/toolchain, dpkg-source for unpacking, archive keyring for trixie
    postgresql-server-dev-15 cmake gcc make libc6-dev libssl-dev
    dpkg-dev xz-utils gpgv debian-archive-keyring
    # the operator console's browser test: Debian's Chromium, driven by Playwright for Python
    # (pyproject's dev extras) with executable_path=/usr/bin/chromium, and a font for its text
    chromium fonts-dejavu-core
    # `make bench`: the API under load is measured with wrk (a load generator in C, so the
    # clients are never what limits the figures)
    wrk
)
command -v "$PYTHON" >/dev/null 2>&1 || APT_PACKAGES+=(python3.11 python3.11-venv)

# ---------------------------------------------------------------- helpers
now_us() { local t=${EPOCHREALTIME//[.,]/}; echo "$t"; }
fmt_since() { # fmt_since START_US -> "12.3s"
    local d=$(($(now_us) - $1))
    printf '%d.%01ds' $((d / 1000000)) $((d % 1000000 / 100000))
}
T_START=$(now_us)
LOG=$(mktemp "${TMPDIR:-/tmp}/telecare-setup.XXXXXX.log")
CURRENT_STEP=""

step() { # step "description"
    CURRENT_STEP=$1
    STEP_START=$(now_us)
    printf '==> [setup] %s ... ' "$1"
}
ok() { printf 'ok (%s%s)\n' "$(fmt_since "$STEP_START")" "${1:+, $1}"; CURRENT_STEP=""; }
skipped() { printf 'skipped (already done%s)\n' "${1:+: $1}"; CURRENT_STEP=""; }
# log CMD...: run CMD with its output going to the log only. fd 9 (the lock below) is
# closed so that daemons started here (postgres, mosquitto) do not keep holding the lock,
# and since their stdout/stderr is the log file, not ours, `setup.sh | tee` cannot hang.
# The `|| rc=$?` keeps the ERR trap from firing inside CMD (where stderr is the log).
log() {
    local rc=0
    "$@" >>"$LOG" 2>&1 9>&- || rc=$?
    return "$rc"
}
show_log_tail() {
    printf -- '--- last lines of %s ---\n' "$LOG"
    tail -n 40 "$LOG" || true
}
die() {
    printf '\nERROR%s: %s\n' "${CURRENT_STEP:+ ($CURRENT_STEP)}" "$*" >&2
    show_log_tail >&2
    exit 1
}
on_err() {
    local rc=$? line=$1
    trap - ERR
    ((BASH_SUBSHELL == 0)) || exit "$rc" # the parent shell reports it
    {
        printf '\nFAILED%s (exit %s, line %s of %s)\n' "${CURRENT_STEP:+: $CURRENT_STEP}" "$rc" "$line" "$0"
        show_log_tail
    } >&2
    exit "$rc"
}
on_exit() {
    local rc=$?
    ((rc != 0)) || rm -f "$LOG"
}
trap 'on_err $LINENO' ERR
trap on_exit EXIT

as_root() {
    if [[ $EUID -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo -n "$@"
    else
        echo "need root (or passwordless sudo) for: $*" >&2
        return 1
    fi
}

wait_until() { # wait_until SECONDS DESCRIPTION CMD... : poll CMD until it succeeds
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "timed out waiting for $what"
        sleep 0.2
    done
}

pkg_installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]; }

cluster_field() { # cluster_field N -> column N of `pg_lsclusters -h` for our cluster
    pg_lsclusters -h 2>/dev/null | awk -v v="$PG_MAJOR" -v c="$PG_CLUSTER" -v n="$1" \
        '$1 == v && $2 == c { print $n }'
}
pg_port() { local p; p=$(cluster_field 3); echo "${p:-$PG_DEFAULT_PORT}"; }
psql_pg() { # psql as postgres over TCP on 127.0.0.1, never prompts
    PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -h 127.0.0.1 -p "$(pg_port)" -U postgres -d postgres \
        -w -X -A -t -q -v ON_ERROR_STOP=1 "$@"
}
pg_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$(pg_port)" -t 2; }
pg_ctl_cluster() { as_root pg_ctlcluster --skip-systemctl-redirect "$PG_MAJOR" "$PG_CLUSTER" "$@"; }

tcp_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

tsdb_installed() {
    [[ -x $PG_CONFIG ]] || return 1
    [[ -f "$("$PG_CONFIG" --pkglibdir)/timescaledb.so" ]] &&
        [[ -f "$("$PG_CONFIG" --sharedir)/extension/timescaledb.control" ]]
}
tsdb_installed_version() {
    sed -n "s/^default_version *= *'\(.*\)'.*/\1/p" "$("$PG_CONFIG" --sharedir)/extension/timescaledb.control"
}

# Serialise concurrent runs (several checkouts share one PostgreSQL / build cache).
exec 9>"${TMPDIR:-/tmp}/telecare-setup.lock"
flock -w 1800 9 || die "another scripts/setup.sh is still running"

# ---------------------------------------------------------------- 1. apt packages
step "apt packages"
missing=()
for p in "${APT_PACKAGES[@]}"; do pkg_installed "$p" || missing+=("$p"); done
if ((${#missing[@]} == 0)); then
    skipped
else
    apt_opts=(-y -q -o DPkg::Lock::Timeout=600
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    log as_root apt-get "${apt_opts[@]}" update
    # only the missing ones: naming an installed package would upgrade it (and restart it)
    log as_root apt-get "${apt_opts[@]}" install --no-install-recommends "${missing[@]}"
    ok "installed: ${missing[*]}"
fi

# ---------------------------------------------------------------- 2. PostgreSQL
step "PostgreSQL $PG_MAJOR/$PG_CLUSTER running"
did=""
if [[ -z $(cluster_field 1) ]]; then
    log as_root pg_createcluster --port "$PG_DEFAULT_PORT" "$PG_MAJOR" "$PG_CLUSTER"
    did="created"
fi
if [[ $(cluster_field 4) != online* ]]; then
    log pg_ctl_cluster start
    did="${did:+$did, }started"
fi
wait_until "$READY_TIMEOUT" "PostgreSQL on 127.0.0.1:$(pg_port)" pg_ready
if [[ -n $did ]]; then ok "$did, port $(pg_port)"; else skipped "port $(pg_port)"; fi

step "trust auth for postgres on 127.0.0.1"
if psql_pg -c 'select 1' >/dev/null 2>&1; then
    skipped
else
    hba=$(as_root pg_conftool -s "$PG_MAJOR" "$PG_CLUSTER" show hba_file 2>/dev/null ||
        echo "/etc/postgresql/$PG_MAJOR/$PG_CLUSTER/pg_hba.conf")
    hba=${hba//\'/}
    # first match wins: put our lines on top, keep the rest as it is
    hba_new=$(
        echo '# added by telecare scripts/setup.sh: trust for postgres over loopback (dev/CI only)'
        echo 'host all postgres 127.0.0.1/32 trust'
        echo 'host all postgres ::1/128 trust'
        as_root cat "$hba"
    )
    printf '%s\n' "$hba_new" | as_root tee "$hba" >/dev/null
    log pg_ctl_cluster reload
    wait_until "$READY_TIMEOUT" "trust login as postgres" psql_pg -c 'select 1'
    ok "added trust lines to $hba"
fi

# ---------------------------------------------------------------- 3. Mosquitto
step "Mosquitto on $MQTT_HOST:$MQTT_PORT"
if tcp_open "$MQTT_HOST" "$MQTT_PORT"; then
    skipped
else
    # Debian's systemd unit creates the pid-file directory; without systemd we must.
    piddir=$(awk '$1 == "pid_file" { print $2 }' "$MOSQUITTO_CONF" | xargs -r dirname)
    if [[ -n $piddir && ! -d $piddir ]]; then
        as_root install -d -m 0755 -o mosquitto -g mosquitto "$piddir"
    fi
    log as_root mosquitto -d -c "$MOSQUITTO_CONF"
    wait_until "$READY_TIMEOUT" "Mosquitto on $MQTT_HOST:$MQTT_PORT" tcp_open "$MQTT_HOST" "$MQTT_PORT"
    ok "started"
fi

# ---------------------------------------------------------------- 4. TimescaleDB
step "TimescaleDB extension (Apache-2, Debian $TSDB_SUITE source)"
if tsdb_installed; then
    skipped "$(tsdb_installed_version)"
else
    apt_dir=$BUILD_DIR/apt
    src_dir=$BUILD_DIR/src
    as_root mkdir -p "$apt_dir/state/lists/partial" "$apt_dir/cache/archives/partial" "$src_dir"
    printf 'deb-src [signed-by=%s] http://deb.debian.org/debian %s main\n' \
        "$DEBIAN_KEYRING" "$TSDB_SUITE" | as_root tee "$apt_dir/sources.list" >/dev/null
    # apt downloads as user _apt: let it write into the download dir (no "unsandboxed" warning)
    if id _apt >/dev/null 2>&1; then as_root chown _apt:root "$src_dir"; fi
    priv_apt=(
        -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State=$apt_dir/state" -o "Dir::Cache=$apt_dir/cache"
        -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
        -o Acquire::Languages=none -o APT::Get::AllowUnauthenticated=false
    )
    log as_root apt-get "${priv_apt[@]}" -q update
    inrelease=$(ls "$apt_dir"/state/lists/*_dists_"${TSDB_SUITE}"_InRelease)
    log gpgv --keyring "$DEBIAN_KEYRING" "$inrelease"

    ver=$TSDB_DEB_VERSION
    if [[ -z $ver ]]; then
        ver=$(apt-cache "${priv_apt[@]}" showsrc --only-source timescaledb |
            awk '/^Version:/ { print $2 }' | sort -V | tail -n 1)
    fi
    [[ -n $ver ]] || die "no timescaledb source package found in $TSDB_SUITE"
    dsc=timescaledb_${ver#*:}.dsc
    cd "$src_dir" # apt-get source downloads into the current directory
    log as_root apt-get "${priv_apt[@]}" -q source --download-only "timescaledb=$ver"

    tree=$src_dir/timescaledb-$ver
    as_root rm -rf "$tree"
    log as_root dpkg-source -x "$src_dir/$dsc" "$tree" # applies debian/patches
    cd "$tree"
    log as_root env BUILD_FORCE_REMOVE=true ./bootstrap \
        -DCMAKE_BUILD_TYPE=Release \
        -DPG_CONFIG="$PG_CONFIG" \
        -DAPACHE_ONLY=1 \
        -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF \
        -DWARNINGS_AS_ERRORS=OFF -DLINTER=OFF \
        -DSEND_TELEMETRY_DEFAULT=OFF
    log as_root make -C build -j"$(nproc)" install
    cd "$REPO_ROOT"
    tsdb_installed || die "timescaledb.so still missing after make install"
    ok "built $(tsdb_installed_version) from timescaledb $ver"
fi

# ---------------------------------------------------------------- 5. PostgreSQL settings
# Settings that need a restart are changed together, so the cluster restarts at most once.
# max_connections: each service holds a pool plus LISTEN connections, and tests run several
# services (and several alert engines) at once against the one cluster.
PG_MIN_CONNECTIONS=500
# shared_buffers: at the UK fleet's size device_state and the newest heartbeat chunk's index
# are updated 15,000 times a second; the default 128 MB made PostgreSQL read and write them
# back constantly (BENCHMARKS.md).
PG_SHARED_BUFFERS_MB=2048
step "shared_preload_libraries includes timescaledb, max_connections >= $PG_MIN_CONNECTIONS, shared_buffers >= ${PG_SHARED_BUFFERS_MB}MB"
current=$(psql_pg -c 'SHOW shared_preload_libraries')
libs=() have=0
IFS=',' read -r -a parts <<<"$current"
for l in "${parts[@]}"; do
    l="${l#"${l%%[![:space:]]*}"}" # trim leading
    l="${l%"${l##*[![:space:]]}"}" # trim trailing
    l=${l#\"}
    l=${l%\"}
    [[ -z $l ]] && continue
    [[ $l == timescaledb || $l == */timescaledb ]] && have=1
    libs+=("'${l//\'/\'\'}'")
done
connections=$(psql_pg -c 'SHOW max_connections')
changed=()
if ((!have)); then
    libs+=("'timescaledb'")
    value=$(IFS=,; echo "${libs[*]}")
    # ALTER SYSTEM (postgresql.auto.conf) wins over postgresql.conf and conf.d/*.conf
    log psql_pg -c "ALTER SYSTEM SET shared_preload_libraries = ${value//,/, }"
    changed+=("shared_preload_libraries")
fi
if ((connections < PG_MIN_CONNECTIONS)); then
    log psql_pg -c "ALTER SYSTEM SET max_connections = $PG_MIN_CONNECTIONS"
    changed+=("max_connections")
fi
buffers_mb=$(psql_pg -c "SELECT setting::bigint * 8 / 1024 FROM pg_settings WHERE name = 'shared_buffers'")
if ((buffers_mb < PG_SHARED_BUFFERS_MB)); then
    log psql_pg -c "ALTER SYSTEM SET shared_buffers = '${PG_SHARED_BUFFERS_MB}MB'"
    changed+=("shared_buffers")
fi
if ((${#changed[@]} == 0)); then
    skipped "$current; max_connections $connections; shared_buffers ${buffers_mb}MB"
else
    log pg_ctl_cluster restart
    wait_until "$READY_TIMEOUT" "PostgreSQL restart" pg_ready
    now=$(psql_pg -c 'SHOW shared_preload_libraries')
    [[ ,${now// /}, == *,timescaledb,* ]] || die "shared_preload_libraries is '$now' after restart"
    ok "changed ${changed[*]}; now '$now', max_connections $(psql_pg -c 'SHOW max_connections'), restarted"
fi

# WAL at 15,000 heartbeats a second: with the default max_wal_size (1 GB) a checkpoint came
# every 30 s, and the first change of every page after a checkpoint writes the whole page to
# the WAL again (device_state is 1.8 million rows updated every two minutes): fewer
# checkpoints and compressed page images. Reloaded, no restart.
step "checkpoints for a high write rate (max_wal_size, checkpoint_timeout, wal_compression)"
wal_settings=$(psql_pg -c "SELECT (SELECT setting::bigint FROM pg_settings WHERE name = 'max_wal_size') >= 8192
    AND (SELECT setting::int FROM pg_settings WHERE name = 'checkpoint_timeout') >= 900
    AND current_setting('wal_compression') = 'lz4'")
if [[ $wal_settings == t ]]; then
    skipped
else
    log psql_pg -c "ALTER SYSTEM SET max_wal_size = '8GB'"
    log psql_pg -c "ALTER SYSTEM SET checkpoint_timeout = '15min'"
    log psql_pg -c "ALTER SYSTEM SET wal_compression = 'lz4'"
    log psql_pg -c 'SELECT pg_reload_conf()'
    ok "max_wal_size 8GB, checkpoint_timeout 15min, wal_compression lz4, reloaded"
fi

# PostgreSQL 15's ALTER SYSTEM refuses timescaledb.* settings: they are only defined once
# the versioned library is loaded, i.e. in a database that has the extension (the
# preloaded timescaledb.so is only a loader). So this goes into a conf.d file, which
# postgresql.conf includes on Debian (include_dir = 'conf.d'); pg_file_settings tells
# whether the files as they are now on disk yield 'off'.
step "timescaledb.telemetry_level = off"
telemetry_file_setting() {
    psql_pg -c "SELECT setting FROM pg_file_settings
                WHERE name = 'timescaledb.telemetry_level' AND error IS NULL
                ORDER BY seqno DESC LIMIT 1"
}
if [[ $(telemetry_file_setting) == off ]]; then
    skipped
else
    conf=$(dirname "$(psql_pg -c 'SHOW config_file')")/conf.d/90-telecare-timescaledb.conf
    as_root mkdir -p "$(dirname "$conf")"
    printf '%s\n' "# written by telecare scripts/setup.sh" "timescaledb.telemetry_level = off" |
        as_root tee "$conf" >/dev/null
    [[ $(telemetry_file_setting) == off ]] ||
        die "$conf is not picked up (is include_dir = 'conf.d' in postgresql.conf?)"
    log psql_pg -c 'SELECT pg_reload_conf()'
    ok "$conf, reloaded"
fi

# ---------------------------------------------------------------- 6. Python venv
step "virtualenv .venv ($PYTHON)"
if [[ -x $VENV/bin/python ]] && "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
    skipped
else
    command -v "$PYTHON" >/dev/null || PYTHON=/usr/bin/python3.11
    rm -rf "$VENV"
    log "$PYTHON" -m venv "$VENV"
    ok
fi

step "pip install -e '.[dev]' -c constraints.txt"
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [[ -f $VENV_STAMP && $(<"$VENV_STAMP") == "$want" ]]; then
    skipped "pyproject.toml unchanged"
else
    log "$VENV/bin/python" -m pip install --progress-bar off -e '.[dev]' -c constraints.txt
    echo "$want" >"$VENV_STAMP"
    ok
fi

printf '==> [setup] done in %s\n' "$(fmt_since "$T_START")"
