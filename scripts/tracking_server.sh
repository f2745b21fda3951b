#!/usr/bin/env bash
# A tracking server a team can share: `mlflow server --app-name basic-auth` (MLflow's own login
# and per-experiment permissions) on PostgreSQL, artifacts proxied by the server.
#
#   scripts/tracking_server.sh start     # start (creates everything on first use)
#   scripts/tracking_server.sh stop
#   scripts/tracking_server.sh status
#
# Settings (environment):
#   MLFLOW_AUTH_ADMIN_PASSWORD or MLFLOW_AUTH_ADMIN_PASSWORD_FILE   required on first start: the
#       admin's password (MLflow creates the admin from it once; change it later through MLflow's
#       update-password API). MLflow's old default "password1234" is refused.
#   MLFLOW_FLASK_SERVER_SECRET_KEY or MLFLOW_FLASK_SERVER_SECRET_KEY_FILE   signs the UI's session
#       cookies; without either, a random key is made once into $TRACKING_SERVER_DIR/flask_secret.
#   TRACKING_SERVER_DIR   where the server keeps its state (default <project>/outputs/tracking_server)
#   MLFLOW_SERVER_HOST    address to bind (default 127.0.0.1: this machine only; see README,
#                         "A shared tracking server", for TLS in front before opening it up)
#   MLFLOW_SERVER_PORT    (default 5000)
#   MLFLOW_SERVER_ALLOWED_HOSTS   MLflow's own: the Host names the server answers (default: localhost)
#   TRACKING_DB_URI       an existing PostgreSQL database for the runs, e.g.
#                         postgresql://mlflow:PW@db-host/mlflow; TRACKING_AUTH_DB_URI likewise for
#                         users and permissions. Without them a private PostgreSQL cluster is made
#                         under $TRACKING_SERVER_DIR/postgres, reachable only through a Unix socket
#                         in a folder only its owner can enter (no TCP port, no password to keep).
#   PG_BIN                folder of initdb/pg_ctl (default: Debian's /usr/lib/postgresql/<newest>/bin)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${TRACKING_SERVER_DIR:-$ROOT/outputs/tracking_server}"
HOST="${MLFLOW_SERVER_HOST:-127.0.0.1}"
PORT="${MLFLOW_SERVER_PORT:-5000}"
MLFLOW="${MLFLOW_BIN:-$ROOT/.venv/bin/mlflow}"
PG_DATA="$DIR/postgres/data"
PG_SOCKET="$DIR/postgres/socket"
PG_USER="$(id -un)"
# PostgreSQL refuses to run as root: as root, the private cluster belongs to Debian's `postgres` user.
AS_PG=()
if [ "$(id -u)" = 0 ]; then PG_USER=postgres; AS_PG=(runuser -u postgres --); fi

die() { echo "tracking_server: $*" >&2; exit 1; }

pg_bin() {
    if [ -n "${PG_BIN:-}" ]; then echo "$PG_BIN"; return; fi
    local newest
    newest="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    [ -n "$newest" ] || die "no PostgreSQL found (Debian: apt-get install postgresql; or set PG_BIN or TRACKING_DB_URI)"
    echo "$newest"
}

# $1: variable name; the value of $1, or the contents of the file named by ${1}_FILE
secret() {
    local name="$1" file_var="${1}_FILE"
    if [ -n "${!name:-}" ]; then printf '%s' "${!name}"; return; fi
    if [ -n "${!file_var:-}" ]; then
        [ -r "${!file_var}" ] || die "$file_var=${!file_var}: no such readable file"
        tr -d '\n' < "${!file_var}"
    fi
}

private_cluster_uri() { echo "postgresql://$PG_USER@/$1?host=$PG_SOCKET"; }

start_postgres() {
    local bin
    bin="$(pg_bin)"
    if [ ${#AS_PG[@]} -gt 0 ] && ! runuser -u postgres -- test -x "$DIR"; then
        die "user postgres cannot reach $DIR (a folder above it is closed to others): choose another TRACKING_SERVER_DIR"
    fi
    if [ ! -f "$PG_DATA/PG_VERSION" ]; then
        echo "tracking_server: creating a private PostgreSQL cluster in $PG_DATA"
        mkdir -p "$PG_DATA" "$PG_SOCKET"
        chmod 700 "$DIR/postgres" "$PG_SOCKET"
        [ ${#AS_PG[@]} -eq 0 ] || chown -R postgres: "$DIR/postgres"
        "${AS_PG[@]}" "$bin/initdb" -D "$PG_DATA" -U "$PG_USER" --auth-local=trust --auth-host=reject \
            >"$DIR/postgres/initdb.log"
    fi
    if ! "${AS_PG[@]}" "$bin/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
        # listen_addresses='': no TCP at all; trust on the socket is safe because the socket folder
        # (0700) lets in only the cluster's owner (and root): that folder is the lock
        "${AS_PG[@]}" "$bin/pg_ctl" -D "$PG_DATA" -l "$DIR/postgres/server.log" -w \
            -o "-c listen_addresses='' -c unix_socket_directories='$PG_SOCKET'" start >/dev/null
    fi
    for db in mlflow mlflow_auth; do
        if ! "${AS_PG[@]}" "$bin/psql" -h "$PG_SOCKET" -d postgres -tAc \
                "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1; then
            "${AS_PG[@]}" "$bin/createdb" -h "$PG_SOCKET" "$db"
        fi
    done
}

start() {
    mkdir -p "$DIR"
    # only its owner may list it; as root, `postgres` must pass through it to its own cluster
    if [ ${#AS_PG[@]} -eq 0 ]; then chmod 700 "$DIR"; else chmod 711 "$DIR"; fi
    if [ -f "$DIR/mlflow.pid" ] && kill -0 "$(cat "$DIR/mlflow.pid")" 2>/dev/null; then
        echo "tracking_server: already running (pid $(cat "$DIR/mlflow.pid")) at http://$HOST:$PORT"; return
    fi
    local password secret_key db_uri auth_uri
    password="$(secret MLFLOW_AUTH_ADMIN_PASSWORD)"
    [ "$password" != "password1234" ] || die "refusing MLflow's old default admin password; choose your own"
    if [ -z "$password" ] && [ ! -f "$DIR/admin_created" ]; then
        die "set MLFLOW_AUTH_ADMIN_PASSWORD or MLFLOW_AUTH_ADMIN_PASSWORD_FILE (the admin's password, used on first start)"
    fi
    secret_key="$(secret MLFLOW_FLASK_SERVER_SECRET_KEY)"
    if [ -z "$secret_key" ]; then
        [ -f "$DIR/flask_secret" ] || (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DIR/flask_secret")
        secret_key="$(cat "$DIR/flask_secret")"
    fi
    db_uri="${TRACKING_DB_URI:-}"
    auth_uri="${TRACKING_AUTH_DB_URI:-}"
    if [ -z "$db_uri" ]; then
        start_postgres
        db_uri="$(private_cluster_uri mlflow)"
        auth_uri="${auth_uri:-$(private_cluster_uri mlflow_auth)}"
    fi
    [ -n "$auth_uri" ] || die "TRACKING_DB_URI is set: set TRACKING_AUTH_DB_URI too (users and permissions)"
    # The auth app's settings; the admin's password goes through the environment, never to disk.
    # default_permission READ: a signed-in user sees every experiment and writes only where
    # granted (the creator of an experiment may manage it; scripts/tracking_users.py grants).
    (umask 077; cat > "$DIR/basic_auth.ini" <<EOF
[mlflow]
default_permission = READ
database_uri = $auth_uri
admin_username = ${MLFLOW_AUTH_ADMIN_USERNAME:-admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
EOF
)
    mkdir -p "$DIR/artifacts"
    echo "tracking_server: starting mlflow server (basic-auth) at http://$HOST:$PORT, log $DIR/mlflow.log"
    # MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false: no background job runner (docs/pitfalls.md, MLflow)
    MLFLOW_AUTH_CONFIG_PATH="$DIR/basic_auth.ini" MLFLOW_AUTH_ADMIN_PASSWORD="$password" \
    MLFLOW_FLASK_SERVER_SECRET_KEY="$secret_key" MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false \
        nohup "$MLFLOW" server --app-name basic-auth --backend-store-uri "$db_uri" \
            --artifacts-destination "$DIR/artifacts" --serve-artifacts \
            --host "$HOST" --port "$PORT" --workers "${MLFLOW_SERVER_WORKERS:-2}" \
            >"$DIR/mlflow.log" 2>&1 &
    echo $! > "$DIR/mlflow.pid"
    for _ in $(seq 1 120); do
        if curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 || \
           curl -fsS "http://$HOST:$PORT/health" >/dev/null 2>&1; then
            touch "$DIR/admin_created"
            echo "tracking_server: up; clients: tracking=server tracking.uri=http://$HOST:$PORT with"
            echo "  MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD or ~/.mlflow/credentials"
            return
        fi
        kill -0 "$(cat "$DIR/mlflow.pid")" 2>/dev/null || { tail -n 30 "$DIR/mlflow.log" >&2; die "mlflow server exited"; }
        sleep 1
    done
    die "mlflow server did not answer /health within 120 s (log: $DIR/mlflow.log)"
}

stop() {
    if [ -f "$DIR/mlflow.pid" ]; then
        local pid
        pid="$(cat "$DIR/mlflow.pid")"
        # the server's workers are its children: end the whole group politely, then for sure
        pkill -TERM -P "$pid" 2>/dev/null || true
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "$DIR/mlflow.pid"
    fi
    if [ -f "$PG_DATA/PG_VERSION" ]; then
        "${AS_PG[@]}" "$(pg_bin)/pg_ctl" -D "$PG_DATA" -m fast stop >/dev/null 2>&1 || true
    fi
    echo "tracking_server: stopped"
}

status() {
    if [ -f "$DIR/mlflow.pid" ] && kill -0 "$(cat "$DIR/mlflow.pid")" 2>/dev/null; then
        echo "tracking_server: running (pid $(cat "$DIR/mlflow.pid")) at http://$HOST:$PORT"
    else
        echo "tracking_server: not running"; return 3
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status (settings: see the top of this file)" >&2; exit 2 ;;
esac
