# Sourced by scripts/test.sh and scripts/up.sh: system packages, and the services the tests need.
# PostgreSQL: a private throwaway cluster on a free loopback port (Debian's server package,
# installed when missing and we are root). Stopped by stop_services, by its PID.

PG_DIR=""

# Debian packages, installed when we are root and apt-get is here; otherwise say what is missing.
_apt_install() {
  [ $# -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "missing system packages ($*): install them, or run as root on Debian" >&2
    return 0
  fi
  echo "== installing $* (Debian packages)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# System tools the tests use: git (lineage), bubblewrap (the worker sandbox), PostgreSQL, and a
# real Prometheus that scrapes /metrics.
install_system_packages() {
  local missing=()
  command -v git >/dev/null || missing+=(git)
  command -v bwrap >/dev/null || missing+=(bubblewrap)
  ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 || missing+=(postgresql)
  command -v prometheus >/dev/null || missing+=(prometheus)
  [ -x /usr/bin/chromium ] || missing+=(chromium)  # the web UI's browser tests (tests/web/)
  _apt_install "${missing[@]}"
}

# The worker sandbox, for up.sh: without it the platform serves unsandboxed and says so.
install_sandbox() {
  command -v bwrap >/dev/null || _apt_install bubblewrap
}

_pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$dir" ] && echo "$dir"
}

start_postgres() {
  local bin port
  bin=$(_pg_bin)
  if [ -z "$bin" ]; then
    echo "PostgreSQL is not installed: the registry tests will run on SQLite only" >&2
    return 0
  fi
  PG_DIR=$(mktemp -d /tmp/algora-pg.XXXXXX)
  port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  local as_user=()
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$PG_DIR"
    as_user=(runuser -u postgres --)
  fi
  "${as_user[@]}" "$bin/initdb" -D "$PG_DIR/data" -U postgres -A trust --no-sync >/dev/null
  "${as_user[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_DIR -c fsync=off" start >/dev/null
  export ALGORA_TEST_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
  echo "== PostgreSQL on 127.0.0.1:$port"
}

stop_services() {
  if [ -n "$PG_DIR" ] && [ -f "$PG_DIR/data/postmaster.pid" ]; then
    kill -INT "$(head -n 1 "$PG_DIR/data/postmaster.pid")" 2>/dev/null || true
    sleep 1
  fi
  [ -n "$PG_DIR" ] && rm -rf "$PG_DIR"
}
