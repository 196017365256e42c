# shellcheck shell=bash
# sqltest.sh - sourced by the integration tests that drive the SQL layer and
# pointsctl on throwaway databases of the test cluster (30_settlement,
# 40_expiry, 41_reconcile, 42_export): TAP lines, a database per scenario
# (dropped at exit unless PTS_KEEP_DBS is set), and the fixtures they share.
# Sets ADMIN, CTL, TMP (a scratch directory, removed at exit) and FAILED;
# DB is the conninfo of the last database made by sqltest_newdb.
#
# Environment: PTS_DB_ADMIN (superuser conninfo), PTS_BIN (pointsctl).

ADMIN=${PTS_DB_ADMIN:?set by scripts/test.sh: the superuser conninfo of the test cluster}
CTL=${PTS_BIN:-build}/pointsctl
TMP=$(mktemp -d)
FAILED=0
SQLTEST_DBS=()

sqltest_cleanup() {
	local d
	if [[ -z ${PTS_KEEP_DBS:-} ]]; then
		for d in "${SQLTEST_DBS[@]}"; do
			psql -X -q "$ADMIN" -c "DROP DATABASE IF EXISTS $d" >/dev/null 2>&1
		done
	fi
	rm -rf "$TMP"
}
trap sqltest_cleanup EXIT

ok() { echo "ok - $1"; }
not_ok() { echo "not ok - $1${2:+ # $2}"; FAILED=1; }
is() { if [[ $2 == "$3" ]]; then ok "$1"; else not_ok "$1" "got '$2' want '$3'"; fi; }
has() { if [[ $2 == *"$3"* ]]; then ok "$1"; else not_ok "$1" "got '$2' wanted '$3' in it"; fi; }

# sqltest_newdb NAME: a fresh database initialised by pointsctl init,
# dropped at exit; its conninfo in DB
sqltest_newdb() {
	SQLTEST_DBS+=("$1")
	psql -X -q "$ADMIN" -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null 2>&1 ||
		{ not_ok "create database $1"; exit 1; }
	DB="$ADMIN dbname=$1"
	"$CTL" --db "$DB" init >/dev/null || { not_ok "pointsctl init on $1"; exit 1; }
}

q() { psql -X -q -At -v ON_ERROR_STOP=1 "$DB" "$@"; }
ctl() { "$CTL" --db "$DB" "$@"; }
flat() { paste -sd' ' -; }

# partners acme and globex, the receipt key test-kid, and t_post(partner,
# id, type, member, points [, reverses]): one message through post_group
# (fake JWS text: the SQL layer does not verify signatures) with a fake
# receipt; it returns "outcome [code] balance" ("-" when not posted)
sqltest_fixtures() {
	q >/dev/null <<'SQL'
INSERT INTO partners (id, name, status) VALUES ('acme', 'Acme', 'active'), ('globex', 'Globex', 'active');
INSERT INTO receipt_keys (kid, public_pem) VALUES ('test-kid', 'none');
CREATE FUNCTION t_post(p text, id text, t text, m text, n bigint, rev text DEFAULT NULL) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
	SELECT * INTO r FROM post_group(ARRAY[p], ARRAY[id], ARRAY['jws.' || p || '.' || id],
		ARRAY[encode(sha256(convert_to('jws.' || p || '.' || id, 'UTF8')), 'hex')], ARRAY['k1'],
		ARRAY[NULL::text], ARRAY[t], ARRAY[m], ARRAY[n], ARRAY[rev]);
	IF r.outcome = 'posted' THEN
		INSERT INTO receipts VALUES (r.entry, 'test-kid', 'receipt.' || id);
	END IF;
	RETURN r.outcome || coalesce(' ' || r.code, '') || ' ' || coalesce(r.balance::text, '-');
END $$;
SQL
}

# the rate cards of acme and globex in force from 2000-01-01
sqltest_cards() {
	q >/dev/null <<'SQL'
INSERT INTO rate_cards (partner_id, issue_price_micros, redeem_price_micros, clearing_fee_micros, effective_from)
VALUES ('acme', 10000, 8000, 1000, '2000-01-01'), ('globex', 12000, 9000, 1000, '2000-01-01');
SQL
}
