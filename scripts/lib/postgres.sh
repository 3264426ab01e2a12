# shellcheck shell=bash
# PostgreSQL for the store tests: installed from Debian when missing, the
# cluster started, and a password set for the postgres role so tests can
# connect over TCP on 127.0.0.1. Source this file, then call ensure_postgres.

SLIPWAY_PG_PASSWORD=${SLIPWAY_PG_PASSWORD:-slipway-test}

ensure_postgres() {
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
        echo "installing PostgreSQL (postgresql) ..." >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null || {
            echo "error: could not install PostgreSQL with apt-get" >&2
            return 1
        }
    fi
    local version
    version=$(ls /etc/postgresql | sort -n | tail -n 1)
    if ! pg_ctlcluster "$version" main status >/dev/null 2>&1; then
        pg_ctlcluster "$version" main start || {
            echo "error: PostgreSQL $version/main did not start; see /var/log/postgresql/postgresql-$version-main.log" >&2
            return 1
        }
    fi
    # pg_isready is the readiness check: the server accepts connections.
    local tries=0
    until pg_isready -q -h 127.0.0.1 -p 5432; do
        tries=$((tries + 1))
        if [ "$tries" -gt 300 ]; then
            echo "error: PostgreSQL does not accept connections on 127.0.0.1:5432" >&2
            return 1
        fi
        sleep 0.1
    done
    su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD '$SLIPWAY_PG_PASSWORD'\"" >/dev/null
    export SLIPWAY_TEST_DATABASE_URL="postgres://postgres:$SLIPWAY_PG_PASSWORD@127.0.0.1:5432/postgres"
}
