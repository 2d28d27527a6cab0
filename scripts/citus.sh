#!/usr/bin/env bash
# Project-local Citus cluster for tests and benchmarks (SPEC §12): a
# coordinator and two workers on loopback, each its own PostgreSQL.
#
#   scripts/citus.sh start    make the citus extension available (see below), create the three
#                             clusters if missing, start them, register the workers, print the URL
#   scripts/citus.sh url      print the coordinator's URL
#   scripts/citus.sh stop     stop the three servers
#   scripts/citus.sh clean    stop them, and delete them if they live outside the clone
#   scripts/citus.sh status   exit 0 when all three are running
#   scripts/citus.sh worker-stop N | worker-start N   stop or start worker N (1 or 2): fault tests
#   scripts/citus.sh available  exit 0 when the extension is installed or can be built
#   scripts/citus.sh setup-db NAME | drop-db NAME   a database on every node (sievebench)
#
# The extension: when PostgreSQL already lists it (pg_available_extensions:
# Citus's packages, a managed image), it is used as is. Otherwise it is
# built once from CITUS_SOURCE (default: the vendored upstream release
# ../shared/vendor/citus/citus-13.2.2.tar.gz beside the clone, patched with
# the patch found next to it) and installed into the local PostgreSQL. The
# build is cached under $SIEVE_CACHE_DIR (default ~/.cache/sieve) keyed by
# the source's sha256 and the server's version, so a reinstall (or a new
# clone) costs a copy, not a build. Building needs root for apt-get (the
# server headers and libraries) and for `make install`.
#
# Everything else mirrors scripts/pg.sh: loopback only, trust auth, the
# servers run as 'postgres' when we are root, the data lives under
# .data/citus (or /var/lib/sieve-pg/<hash>/citus when the clone is in a
# private directory). Ports: SIEVE_CITUS_PORT (the coordinator; workers
# take the next two) or derived from the clone's path in 61000-64999,
# outside Linux's ephemeral range and pg.sh's 55433-59432.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
base="$root/.data"
if [ "$(id -u)" = 0 ] && ! runuser -u nobody -- test -x "$root/." 2>/dev/null; then
  alt="/var/lib/sieve-pg/$(printf '%s' "$root" | cksum | cut -d' ' -f1)"
  base="$alt"
fi
dir="$base/citus"
run="$base/citus-run"
db="${SIEVE_PG_DB:-sieve}"
nodes=(coord w1 w2)
# In a git worktree, ../shared is beside the main checkout rather than the worktree.
default_source() {
  local rel=shared/vendor/citus/citus-13.2.2.tar.gz common
  if [ ! -r "$root/../$rel" ] && common=$(git -C "$root" rev-parse --path-format=absolute --git-common-dir 2>/dev/null) &&
    [ -r "$(dirname "$common")/../$rel" ]; then
    echo "$(cd "$(dirname "$common")/.." && pwd)/$rel"
  else
    echo "$root/../$rel"
  fi
}
source_tgz="${CITUS_SOURCE:-$(default_source)}"
cache_root="${SIEVE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sieve}/citus"

log() { echo "citus.sh: $*" >&2; }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The coordinator's port: recorded in its data directory once chosen.
recorded_port() {
  [ -r "$dir/coord/sieve.conf" ] || return 1
  sed -n 's/^port = \([0-9][0-9]*\).*/\1/p' "$dir/coord/sieve.conf" | tail -n 1
}

free_port() {
  local sum p i
  sum=$(printf '%s' "$root" | cksum | cut -d' ' -f1)
  p=$(( 61000 + (sum % 1300) * 3 ))
  for i in $(seq 0 99); do
    if ! listening "$p" && ! listening $((p + 1)) && ! listening $((p + 2)); then echo "$p"; return; fi
    p=$(( p + 3 )); [ "$p" -gt 64997 ] && p=61000
  done
  log "no three free ports in 61000-64999; set SIEVE_CITUS_PORT"
  exit 1
}

if [ -n "${SIEVE_CITUS_PORT:-}" ]; then
  port=$SIEVE_CITUS_PORT
else
  port=$(recorded_port 2>/dev/null || true)
  [ -n "$port" ] || port=$(free_port)
fi
node_port() { # coord|w1|w2
  case "$1" in coord) echo "$port" ;; w1) echo $((port + 1)) ;; w2) echo $((port + 2)) ;; esac
}

bindir() { "$root/scripts/pg.sh" bindir; }

as_pg() {
  if [ "$(id -u)" = 0 ]; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

url() { echo "postgres://postgres@127.0.0.1:$port/$db?sslmode=disable"; }

# The server's pg_config with the server headers (postgresql-server-dev-NN).
server_pg_config() {
  local b; b=$(bindir 2>/dev/null) || return 1
  [ -x "$b/pg_config" ] && [ -f "$("$b/pg_config" --includedir-server)/postgres.h" ] && echo "$b/pg_config"
}

# have_extension: the server would list citus in pg_available_extensions
# (its control file is in the share directory) and can load its library.
have_extension() {
  local b pc
  b=$(bindir 2>/dev/null) || return 1
  pc="$b/pg_config"; [ -x "$pc" ] || pc=$(command -v pg_config) || return 1
  [ -f "$("$pc" --sharedir)/extension/citus.control" ] && [ -f "$("$pc" --pkglibdir)/citus.so" ]
}

how_to_get() {
  cat >&2 <<EOF
citus.sh: Citus is not available: the citus extension is not installed in this PostgreSQL
  ($(bindir 2>/dev/null || echo "no PostgreSQL found")) and its source is not at
  CITUS_SOURCE=$source_tgz
To get it, either:
  - install it from packages: Citus's repository (https://github.com/citusdata/citus#getting-started,
    package postgresql-15-citus-13.2 or newer for your PostgreSQL major version); or
  - put the upstream source release there (git archive of tag v13.2.2 from
    https://github.com/citusdata/citus, as in ../shared/vendor/citus/README.md) and rerun as root:
    it is then built once (about 3 minutes on two cores) and cached; or
  - point CITUS_SOURCE at such a tarball.
EOF
}

# ensure_extension makes the citus extension available: installed already,
# installed from the cache, or built from source into the cache and installed.
ensure_extension() {
  if have_extension; then return 0; fi
  if [ ! -r "$source_tgz" ]; then how_to_get; return 3; fi
  if [ "$(id -u)" != 0 ]; then
    log "building Citus needs root (apt-get for the server headers, make install into PostgreSQL); rerun as root or install Citus"
    return 1
  fi
  local pc
  if ! pc=$(server_pg_config); then
    log "installing the PostgreSQL server headers and Citus's build dependencies with apt-get (one time)"
    export DEBIAN_FRONTEND=noninteractive
    local major aptlog; major=$(basename "$(dirname "$(bindir)")"); aptlog=$(mktemp)
    apt-get update -qq >"$aptlog" 2>&1 || { cat "$aptlog" >&2; return 1; }
    # The headers package upgrades the server to its minor version: the
    # extension must be built against the server that loads it.
    apt-get install -y -qq --no-install-recommends "postgresql-server-dev-$major" "postgresql-$major" \
      build-essential libcurl4-openssl-dev liblz4-dev libzstd-dev libkrb5-dev libssl-dev \
      libselinux1-dev libxslt1-dev libpam0g-dev libreadline-dev >>"$aptlog" 2>&1 || {
        log "apt-get failed:"; tail -n 30 "$aptlog" >&2; return 1; }
    rm -f "$aptlog"
    pc=$(server_pg_config) || { log "no pg_config after installing postgresql-server-dev-$major"; return 1; }
  fi
  local sha ver key cache
  sha=$(sha256sum "$source_tgz" | cut -d' ' -f1)
  ver=$("$pc" --version | tr -c 'A-Za-z0-9.\n' '_')
  key="${sha:0:16}-$ver"
  cache="$cache_root/$key"
  if [ ! -f "$cache/built" ]; then
    local t0=$SECONDS src
    log "building Citus from $source_tgz for $("$pc" --version) (one time, a few minutes)"
    rm -rf "$cache"; mkdir -p "$cache/src"
    tar xzf "$source_tgz" -C "$cache/src" --strip-components=1
    local patch
    for patch in "$(dirname "$source_tgz")"/citus-*.patch; do
      [ -r "$patch" ] || continue
      (cd "$cache/src" && patch -p1 --forward --silent <"$patch") >&2
    done
    (cd "$cache/src" && PG_CONFIG="$pc" ./configure --without-libcurl PG_CONFIG="$pc" >"$cache/build.log" 2>&1 &&
      make -j"$(nproc)" >>"$cache/build.log" 2>&1 &&
      make install DESTDIR="$cache/stage" >>"$cache/build.log" 2>&1) || {
        log "the Citus build failed; the end of $cache/build.log:"; tail -n 30 "$cache/build.log" >&2; return 1; }
    rm -rf "$cache/src"
    echo "$((SECONDS - t0))s" >"$cache/built"
    log "built Citus in $(cat "$cache/built")"
  fi
  cp -a "$cache/stage/." /
  have_extension || { log "Citus is installed from $cache but the server does not see it"; return 1; }
}

running_node() {
  local b; b=$(bindir 2>/dev/null) || return 1
  [ -f "$dir/$1/PG_VERSION" ] && as_pg "$b/pg_ctl" -D "$dir/$1" status >/dev/null 2>&1
}

psql_node() { # node sql...
  local n=$1; shift
  PGOPTIONS='-c client_min_messages=warning' as_pg "$(bindir)/psql" -h 127.0.0.1 -p "$(node_port "$n")" -U postgres -v ON_ERROR_STOP=1 -Atq "$@"
}

init_node() {
  local n=$1 b; b=$(bindir)
  mkdir -p "$dir/$n"
  [ "$(id -u)" = 0 ] && { chown postgres "$dir/$n"; chmod 700 "$dir/$n"; }
  [ -f "$dir/$n/PG_VERSION" ] && return 0
  log "creating the $n cluster in $dir/$n"
  as_pg "$b/initdb" -D "$dir/$n" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  cat <<CONF | as_pg tee -a "$dir/$n/postgresql.conf" >/dev/null
# Sieve Citus test cluster ($n)
listen_addresses = '127.0.0.1'
unix_socket_directories = '$run'
shared_preload_libraries = 'citus'
max_connections = 400
# Citus runs a maintenance worker in every database that has the extension
# (the tests' templates and throwaway databases).
max_worker_processes = 128
# Multi-shard writes commit with two-phase commit on the workers.
max_prepared_transactions = 400
# Shard moves (citus_rebalance_start) use logical replication.
wal_level = logical
shared_buffers = 256MB
wal_buffers = 16MB
max_wal_size = 2GB
checkpoint_timeout = 15min
log_min_messages = warning
logging_collector = off
# Small tables and a handful of test databases: 8 shards per distributed
# table (two workers) keep CREATE of a test database's schema quick.
citus.shard_count = 8
citus.log_remote_commands = off
include_if_exists = 'sieve.conf'
CONF
}

start_node() {
  local n=$1 b p; b=$(bindir); p=$(node_port "$n")
  # multi_shard_modify_mode: one connection per worker in every transaction;
  # after a parallel read of several shards Citus refuses a write to a
  # reference table with foreign keys in the same transaction (migration
  # 0022 sets it on the database too; copies made from a template lose that).
  printf "# Written by scripts/citus.sh at every start.\nport = %s\ncitus.multi_shard_modify_mode = 'sequential'\n" "$p" |
    as_pg tee "$dir/$n/sieve.conf" >/dev/null
  if running_node "$n"; then as_pg "$b/pg_ctl" -D "$dir/$n" reload >/dev/null; return 0; fi
  if listening "$p"; then log "port $p ($n) is in use by another server; set SIEVE_CITUS_PORT or run clean"; exit 1; fi
  as_pg "$b/pg_ctl" -D "$dir/$n" -l "$run/$n.log" -w -t 60 start >/dev/null || {
    log "the $n server did not start; its log:"; tail -n 30 "$run/$n.log" >&2; exit 1; }
}

# setup_db creates db on every node with the extension, and registers the
# coordinator and the workers in the coordinator's copy (it syncs the
# metadata to the workers). Idempotent.
setup_db() {
  local name=$1 n
  for n in "${nodes[@]}"; do
    if ! psql_node "$n" -d postgres -c "select 1 from pg_database where datname = '$name'" | grep -q 1; then
      psql_node "$n" -d postgres -c "create database $name" >/dev/null
    fi
    psql_node "$n" -d "$name" -c "create extension if not exists citus" >/dev/null
  done
  psql_node coord -d "$name" >/dev/null <<SQL
select citus_set_coordinator_host('127.0.0.1', $port);
select citus_add_node('127.0.0.1', $((port + 1))) where not exists (select 1 from pg_dist_node where nodeport = $((port + 1)));
select citus_add_node('127.0.0.1', $((port + 2))) where not exists (select 1 from pg_dist_node where nodeport = $((port + 2)));
SQL
}

# drop_db drops NAME on every node, the coordinator's copy first: WITH
# (FORCE) does not end Citus's maintenance daemon (a background worker), so
# each drop is tried again after ending the database's sessions, and the
# workers' copies go only once the coordinator's is gone (an orphaned
# coordinator database's daemon reconnects to them many times a second).
drop_db() {
  local name=$1 n try
  for n in "${nodes[@]}"; do
    for try in $(seq 20); do
      psql_node "$n" -d postgres -c "select pg_terminate_backend(pid) from pg_stat_activity where datname = '$name' and pid <> pg_backend_pid()" >/dev/null
      psql_node "$n" -d postgres -c "drop database if exists $name with (force)" >/dev/null 2>&1 && break
      [ "$try" = 20 ] && { log "could not drop $name on $n"; return 1; }
      sleep 0.1
    done
  done
}

start() {
  "$root/scripts/pg.sh" bindir >/dev/null 2>&1 || { log "PostgreSQL is missing: scripts/pg.sh start installs it"; "$root/scripts/pg.sh" start >/dev/null; }
  ensure_extension || exit $?
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  fi
  mkdir -p "$dir" "$run"
  [ "$(id -u)" = 0 ] && chown postgres "$dir" "$run"
  local n
  for n in "${nodes[@]}"; do init_node "$n"; done
  for n in "${nodes[@]}"; do start_node "$n"; done
  setup_db "$db"
}

stop() {
  local b n; b=$(bindir 2>/dev/null) || return 0
  for n in "${nodes[@]}"; do
    if running_node "$n"; then as_pg "$b/pg_ctl" -D "$dir/$n" -m fast -w stop >/dev/null; fi
  done
}

clean() {
  stop
  if [ -n "${alt:-}" ]; then rm -rf "$alt/citus" "$alt/citus-run"; fi
}

worker() { # stop|start N
  local n="w$2" b; b=$(bindir)
  case "$1" in
    stop) running_node "$n" && as_pg "$b/pg_ctl" -D "$dir/$n" -m immediate -w stop >/dev/null ;;
    start) start_node "$n" ;;
  esac
}

case "${1:-}" in
  start) start; url ;;
  url) url ;;
  stop) stop ;;
  clean) clean ;;
  status) for n in "${nodes[@]}"; do running_node "$n" || exit 1; done ;;
  setup-db) setup_db "$2" ;;
  drop-db) drop_db "$2" ;;
  worker-stop) worker stop "$2" ;;
  worker-start) worker start "$2" ;;
  available) have_extension || [ -r "$source_tgz" ] ;;
  *) echo "usage: $0 start|url|stop|clean|status|available|setup-db NAME|drop-db NAME|worker-stop N|worker-start N" >&2; exit 2 ;;
esac
