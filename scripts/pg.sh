#!/usr/bin/env bash
# Project-local PostgreSQL for development and tests.
#
#   scripts/pg.sh start   install PostgreSQL if missing (apt-get, as root), create the cluster
#                         under .data/pg if missing, start it on 127.0.0.1, create the database
#   scripts/pg.sh url     print the DATABASE_URL of the local cluster (its port: see below)
#   scripts/pg.sh stop    stop the cluster
#   scripts/pg.sh clean   stop it, and delete it if it lives outside the clone (see below)
#   scripts/pg.sh status  exit 0 when it is running
#
# The cluster listens on loopback only and trusts local connections: it is a
# development database, never a production one.
#
# Each clone gets its own port, so two clones' clusters coexist: a new
# cluster takes SIEVE_PG_PORT if set, else a port derived from the clone's
# path (55433-59432), moving past ports something already listens on, and
# records it in its data directory (sieve.conf; older clusters have it in
# postgresql.conf, 55432 for all of them, and keep it). `url` prints the
# recorded port; everything else (make, run.sh, pgtest, brokerd's
# development default) asks this script rather than assuming a port. PostgreSQL refuses to run as
# root, so when we are root the server runs as the 'postgres' system user.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
data="$root/.data/pg"
run="$root/.data/pg-run"
# As root the server runs as 'postgres', which cannot reach a clone inside
# a private directory (mktemp -d is 0700): keep the cluster outside then.
if [ "$(id -u)" = 0 ] && ! runuser -u nobody -- test -x "$root/." 2>/dev/null; then
  alt="/var/lib/sieve-pg/$(printf '%s' "$root" | cksum | cut -d' ' -f1)"
  data="$alt/pg"
  run="$alt/pg-run"
fi
db="${SIEVE_PG_DB:-sieve}"

log() { echo "pg.sh: $*" >&2; }

# recorded_port prints the port the cluster was given, if it exists: the
# last "port =" of postgresql.conf and sieve.conf (included last).
recorded_port() {
  local f p last=""
  for f in "$data/postgresql.conf" "$data/sieve.conf"; do
    [ -r "$f" ] || continue
    p=$(sed -n 's/^port = \([0-9][0-9]*\).*/\1/p' "$f" | tail -n 1)
    [ -n "$p" ] && last=$p
  done
  [ -n "$last" ] && echo "$last"
}

# listening reports whether something accepts connections on the port.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port prints a port for a new cluster: derived from the clone's path,
# so it is the same at every run, and past any port in use.
free_port() {
  local sum p i
  sum=$(printf '%s' "$root" | cksum | cut -d' ' -f1)
  p=$(( 55433 + sum % 4000 ))
  for i in $(seq 0 99); do
    if ! listening "$p"; then echo "$p"; return; fi
    p=$(( p + 1 )); [ "$p" -gt 59432 ] && p=55433
  done
  log "no free port in 55433-59432; set SIEVE_PG_PORT"
  exit 1
}

if [ -n "${SIEVE_PG_PORT:-}" ]; then
  port=$SIEVE_PG_PORT
else
  port=$(recorded_port || true)
  [ -n "$port" ] || port=$(free_port)
fi

find_bindir() {
  local d
  if command -v pg_config >/dev/null 2>&1; then
    d=$(pg_config --bindir 2>/dev/null || true)
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  done
  return 1
}

install_pg() {
  if [ "$(id -u)" != 0 ]; then
    log "PostgreSQL is not installed and we are not root; install the 'postgresql' package or set DATABASE_URL"
    exit 1
  fi
  log "installing PostgreSQL with apt-get (one time)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends postgresql postgresql-contrib >&2
}

as_pg() {
  if [ "$(id -u)" = 0 ]; then
    # From /: the postgres user may not be able to enter the current
    # directory (a private clone), and its tools warn when they cannot.
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

url() { echo "postgres://postgres@127.0.0.1:$port/$db?sslmode=disable"; }

running() {
  local bindir; bindir=$(find_bindir) || return 1
  [ -f "$data/PG_VERSION" ] && as_pg "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1
}

start() {
  local bindir
  bindir=$(find_bindir) || { install_pg; bindir=$(find_bindir); }
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  fi
  mkdir -p "$data" "$run"
  if [ "$(id -u)" = 0 ]; then
    chown postgres "$data" "$run"
    chmod 700 "$data"
  fi
  if [ ! -f "$data/PG_VERSION" ]; then
    log "creating the cluster in $data"
    as_pg "$bindir/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    cat >>"$data/postgresql.conf" <<CONF
# Sieve development cluster
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$run'
max_connections = 300
wal_buffers = 16MB
max_wal_size = 2GB
checkpoint_timeout = 15min
log_min_messages = warning
logging_collector = off
CONF
  fi
  tune
  if ! running; then
    if listening "$port"; then
      if [ -n "${SIEVE_PG_PORT:-}" ]; then
        log "port $port (SIEVE_PG_PORT) is in use by another server"; exit 1
      fi
      # Another clone's cluster (or anything else) took our port while we
      # were stopped: move, and record the move.
      local old=$port
      port=$(free_port)
      log "port $old is in use by another server; this cluster moves to $port"
      tune
    fi
    as_pg "$bindir/pg_ctl" -D "$data" -l "$run/postgres.log" -w -t 60 start >/dev/null || {
      log "PostgreSQL did not start; its log:"; tail -n 30 "$run/postgres.log" >&2; exit 1; }
  else
    # A package upgrade (scripts/citus.sh installs the server headers, which
    # can bring a newer minor release) replaces the binaries and libraries
    # under a running server, whose next backend then fails to load
    # plpgsql. Restart a server older than its binaries.
    local have want
    have=$(as_pg "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atqc "show server_version" 2>/dev/null | awk '{print $1}')
    want=$("$bindir/postgres" --version | awk '{print $3}')
    if [ -n "$have" ] && [ "$have" != "$want" ]; then
      log "PostgreSQL was upgraded from $have to $want under the running server: restarting it"
      as_pg "$bindir/pg_ctl" -D "$data" -l "$run/postgres.log" -m fast -w -t 60 restart >/dev/null || {
        log "PostgreSQL did not restart; its log:"; tail -n 30 "$run/postgres.log" >&2; exit 1; }
    fi
  fi
  if ! as_pg "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atqc \
      "select 1 from pg_database where datname = '$db'" | grep -q 1; then
    as_pg "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres "$db"
  fi
}

# tune writes the settings that depend on the machine into sieve.conf,
# included last by postgresql.conf (older clusters get the include too); a
# running server takes them at its next start.
#
# shared_buffers: a quarter of the memory, at most 2 GB (PostgreSQL's own
# advice is about a quarter). The hot data must live there rather than in
# the kernel's page cache: machines of this kind run a proactive reclaimer
# (DAMON, "pageout" of memory idle for about a minute) that drops cached
# file pages, so a log read a minute ago came back from disk, and `audit
# verify` or the explorer ran up to several times slower. PostgreSQL's
# shared memory cannot be paged out without swap.
tune() {
  local mem_kb sb_mb
  mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null || echo 1048576)
  sb_mb=$(( mem_kb / 4 / 1024 ))
  [ "$sb_mb" -gt 2048 ] && sb_mb=2048
  [ "$sb_mb" -lt 128 ] && sb_mb=128
  printf '# Written by scripts/pg.sh at every start: edit the script, not this file.\nshared_buffers = %sMB\nport = %s\n' "$sb_mb" "$port" \
    | as_pg tee "$data/sieve.conf" >/dev/null
  grep -q "^include_if_exists = 'sieve.conf'" "$data/postgresql.conf" ||
    echo "include_if_exists = 'sieve.conf'" | as_pg tee -a "$data/postgresql.conf" >/dev/null
}

stop() {
  local bindir; bindir=$(find_bindir) || return 0
  if running; then as_pg "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null; fi
}

# clean stops the cluster and deletes it when it lives outside the clone
# (make clean removes .data itself).
clean() {
  stop
  if [ -n "${alt:-}" ]; then rm -rf "$alt"; fi
}

case "${1:-}" in
  start) start; url ;;
  url) url ;;
  stop) stop ;;
  clean) clean ;;
  status) running ;;
  bindir) find_bindir ;;
  *) echo "usage: $0 start|url|stop|clean|status|bindir" >&2; exit 2 ;;
esac
