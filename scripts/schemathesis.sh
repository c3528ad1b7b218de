#!/usr/bin/env bash
# Schema-driven API testing: schemathesis (PyPI) generates requests from the hub's own
# /openapi.json and checks every answer against it (declared status codes, content types,
# headers and schemas, no 500s, bad input refused, ...). Exits non-zero on any failure.
#
#   scripts/schemathesis.sh            # ~30 examples per operation
#   ST_MAX_EXAMPLES=200 scripts/schemathesis.sh
#   ST_SEED=1 scripts/schemathesis.sh            # the same examples every run (CI)
#   ST_EXCLUDE_CHECKS= scripts/schemathesis.sh   # every check, positive_data_acceptance too
#
# It builds target/debug/dcbhub (or uses $DCBHUB_BIN), starts it on a free port with a
# throw-away SQLite database, creates a partner (consent `none`) and an admin token, and runs
# `st run` with both credentials. The run's report is kept in $ST_REPORT_DIR (default
# target/schemathesis).
set -euo pipefail
cd "$(dirname "$0")/.."

ST_VERSION="${ST_VERSION:-4.32.5}"
MAX_EXAMPLES="${ST_MAX_EXAMPLES:-30}"
REPORT_DIR="${ST_REPORT_DIR:-target/schemathesis}"
mkdir -p "$REPORT_DIR"
REPORT_DIR="$(cd "$REPORT_DIR" && pwd)"

if ! command -v st >/dev/null 2>&1 || ! python3 -c 'import schemathesis' 2>/dev/null; then
  echo "== installing schemathesis ${ST_VERSION} from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check "schemathesis==${ST_VERSION}"
fi
ST=(st)
command -v st >/dev/null 2>&1 || ST=(python3 -m schemathesis.cli)

if [[ -z "${DCBHUB_BIN:-}" ]]; then
  echo "== cargo build -p dcbhub"
  cargo build --quiet -p dcbhub
  DCBHUB_BIN="$PWD/target/debug/dcbhub"
fi

work="$(mktemp -d -t dcbhub-st-XXXXXX)"
hub_pid=""
cleanup() {
  if [[ -n "$hub_pid" ]]; then
    kill "$hub_pid" 2>/dev/null || true
    wait "$hub_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

admin_token="st-admin-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
cat >"$work/dcbhub.toml" <<TOML
database_url = "sqlite://$work/dcbhub.db"
admin_token = "$admin_token"
[sandbox]
demo_partner = false
TOML

# Only this script's configuration counts, not DCBHUB_* variables of the caller (the binary's
# path is kept aside first: it is one of them).
hub_bin="$DCBHUB_BIN"
for name in $(env | grep -o '^DCBHUB_[A-Z0-9_]*' || true); do unset "$name"; done
export RUST_LOG="${RUST_LOG:-warn}"

api_key="$("$hub_bin" --config "$work/dcbhub.toml" partner create \
  --code SCHEMA --name Schemathesis --consent none --json \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["apiKey"])')"

DCBHUB_LISTEN=127.0.0.1:0 "$hub_bin" --config "$work/dcbhub.toml" serve \
  >"$work/stdout.log" 2>"$work/hub.log" &
hub_pid=$!
base=""
for _ in $(seq 1 100); do
  base="$(sed -n 's#^dcbhub listening on \(http://[0-9.:]*\).*#\1#p' "$work/stdout.log" | head -1)"
  [[ -n "$base" ]] && break
  if ! kill -0 "$hub_pid" 2>/dev/null; then
    echo "dcbhub serve exited:" >&2
    cat "$work/hub.log" >&2
    exit 1
  fi
  sleep 0.1
done
if [[ -z "$base" ]]; then
  echo "dcbhub serve did not start in 10 s" >&2
  cat "$work/hub.log" >&2
  exit 1
fi
echo "== schemathesis $("${ST[@]}" --version | awk '{print $NF}') against $base/openapi.json"

# `positive_data_acceptance` is left out: it wants every schema-valid request accepted, but
# the contract refuses values no JSON Schema can describe (an E.164 number with an unknown
# country code, more fraction digits than the currency has, msisdn and email both given),
# always with `400 invalid-request`. Every other check runs.
EXCLUDE_CHECKS="${ST_EXCLUDE_CHECKS-positive_data_acceptance}"
common=(
  --checks all
  ${EXCLUDE_CHECKS:+--exclude-checks "$EXCLUDE_CHECKS"}
  --max-examples "$MAX_EXAMPLES"
  --generation-database none
  ${ST_SEED:+--seed "$ST_SEED"}
  --no-color
)
status=0
# schemathesis keeps a cache in ./.schemathesis: run it from the throw-away folder.
cd "$work"
# The OTT API first, as the partner; then the admin API, whose stateful tests may suspend
# that partner or revoke its key.
echo "== OTT API (X-API-KEY)"
"${ST[@]}" run "$base/openapi.json" "${common[@]}" \
  --exclude-path-regex '^/admin' \
  --header "X-API-KEY: $api_key" \
  --report junit --report-junit-path "$REPORT_DIR/ott-api.xml" \
  "$@" || status=$?
echo "== admin API (bearer token)"
"${ST[@]}" run "$base/openapi.json" "${common[@]}" \
  --include-path-regex '^/admin' \
  --header "Authorization: Bearer $admin_token" \
  --report junit --report-junit-path "$REPORT_DIR/admin-api.xml" \
  "$@" || status=$?

if ! kill -0 "$hub_pid" 2>/dev/null; then
  echo "dcbhub serve died during the run:" >&2
  tail -50 "$work/hub.log" >&2
  status=1
elif grep -q '"level":"ERROR"' "$work/hub.log"; then
  echo "== errors the hub logged during the run:"
  grep '"level":"ERROR"' "$work/hub.log" | head -20
fi
exit "$status"
