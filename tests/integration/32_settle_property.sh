#!/bin/bash
# 32_settle_property.sh - a property test of settlement (issue 7): random
# workloads (thousands of messages, eight partners with odd prices, random
# partial reversals) in both models; every batch sums to exactly zero, the
# money journal leaves every partner at zero after payments, interchange
# points equal redemptions net of reversals, each line's net is the sum of
# its rounded items, and settling again returns the identical batch.
set -uo pipefail
. "$(dirname "$0")/stack.sh"

RUN=p$$x$RANDOM
SEED=${PTS_PROPERTY_SEED:-0.$RANDOM}
N=${PTS_PROPERTY_MESSAGES:-3000}
W=$PTS_STACK/prop_$RUN
mkdir -p "$W"
DBS=()
trap 'for d in "${DBS[@]}"; do "$PTS_PGBIN/dropdb" -h "$PTS_PGHOST" -p "$PTS_PGPORT" -U postgres --if-exists "$d" 2>/dev/null; done' EXIT
echo "# seed $SEED, $N messages per model (PTS_PROPERTY_SEED to repeat)"

run_model() { # MODEL
	local model=$1 db=prop_${RUN}_$1 admin q batch show1 show2 sha1 sha2
	admin="host=$PTS_PGHOST port=$PTS_PGPORT dbname=$db user=postgres"
	q() { "$PTS_PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 "$admin" "$@"; }
	DBS+=("$db")
	"$PTS_PGBIN/createdb" -h "$PTS_PGHOST" -p "$PTS_PGPORT" -U postgres "$db" &&
		"$PTS_BIN/pointsctl" --db "$admin" init >/dev/null &&
		"$PTS_BIN/pointsctl" --db "$admin" settings set model "$model" >/dev/null ||
		{ t_not_ok "$model: a database of its own"; return; }
	# partners with odd prices (so that rounding matters), a period around the run
	q >/dev/null <<SQL || { t_not_ok "$model: random workload posted"; return; }
SELECT setseed($SEED);
INSERT INTO partners (id, name, status) SELECT 'q' || i, 'partner ' || i, 'active' FROM generate_series(1, 8) i;
INSERT INTO rate_cards (partner_id, issue_price_micros, redeem_price_micros, clearing_fee_micros, effective_from)
SELECT 'q' || i, 5000 + floor(random() * 20000)::int, 4000 + floor(random() * 15000)::int,
	floor(random() * 3000)::int, now() - interval '1 day' FROM generate_series(1, 8) i;
INSERT INTO periods (label, cycle, timezone, starts_at, ends_at)
VALUES ('prop', 'daily', 'UTC', now() - interval '1 second', now() + interval '1 hour');
INSERT INTO receipt_keys (kid, public_pem) VALUES ('test-kid', 'none');
DO \$\$
DECLARE
	i int; p text; t text; m text; n bigint; rev text; r record;
BEGIN
	FOR i IN 1 .. $N LOOP
		p := 'q' || (1 + floor(random() * 8)::int);
		m := 'M' || (1 + floor(random() * 60)::int);
		rev := NULL;
		IF i < 50 OR random() < 0.5 THEN
			t := 'issue'; n := 1 + floor(random() * 5000)::bigint;
		ELSIF random() < 0.7 THEN
			t := 'redeem'; n := 1 + floor(random() * 3000)::bigint;
		ELSE
			SELECT x.msg_id, x.member, x.points - x.reversed_points AS left INTO r
			FROM messages x WHERE x.partner_id = p AND x.type <> 'reverse'
			  AND x.points > x.reversed_points ORDER BY random() LIMIT 1;
			IF NOT FOUND THEN
				CONTINUE;
			END IF;
			t := 'reverse'; m := r.member; rev := r.msg_id;
			n := 1 + floor(random() * r.left)::bigint;
		END IF;
		-- pointsd writes the receipt of each posted message in the same transaction
		INSERT INTO receipts
		SELECT g.entry, 'test-kid', 'receipt.m' || i
		FROM post_group(ARRAY[p], ARRAY['m' || i], ARRAY['jws-' || i],
			ARRAY[repeat('0', 64)], ARRAY['k'], ARRAY[NULL::text], ARRAY[t], ARRAY[m],
			ARRAY[n], ARRAY[rev]) g WHERE g.outcome = 'posted';
	END LOOP;
END
\$\$;
UPDATE periods SET ends_at = clock_timestamp() WHERE label = 'prop';
SQL
	t_check "$model: thousands of messages posted ($(q -c "SELECT count(*) FROM entries"))" \
		test "$(q -c "SELECT count(*) FROM entries")" -gt $((N / 2))
	t_check "$model: redemptions and reversals of both kinds among them" test \
		"$(q -c "SELECT count(DISTINCT type) + count(DISTINCT reverses_entry IS NULL) FROM entries")" -eq 5
	"$PTS_BIN/pointsctl" --db "$admin" settle --period prop --receipt-key "$PTS_CERTS/receipt.key" >/dev/null ||
		{ t_not_ok "$model: settle"; return; }
	batch=$(q -c "SELECT id FROM settlement_batches WHERE period = 'prop'")
	t_is "$model: the batch sums to exactly zero (partners' nets + operator)" \
		"$(q -c "SELECT sum(l.net_minor) + b.operator_net_minor FROM batch_lines l
		         JOIN settlement_batches b ON b.id = l.batch_id WHERE b.id = $batch GROUP BY b.operator_net_minor")" 0
	t_is "$model: each line's net is the sum of its rounded items" \
		"$(q -c "SELECT count(*) FROM batch_lines WHERE batch_id = $batch AND net_minor <>
		         issued_minor + issue_reversed_minor + redeemed_minor + redeem_reversed_minor + fees_minor
		         + interchange_payable_minor + interchange_receivable_minor")" 0
	t_is "$model: the money journal leaves every partner at zero after the payments" \
		"$(q -c "SELECT count(*) FROM (SELECT acct, sum(d) s FROM (
		           SELECT debit acct, amount_minor d FROM money_journal WHERE batch_id = $batch
		           UNION ALL SELECT credit, -amount_minor FROM money_journal WHERE batch_id = $batch) j
		         WHERE acct LIKE 'partner:%' GROUP BY acct) x WHERE s <> 0")" 0
	t_is "$model: interchange points = redemptions net of redeem reversals" \
		"$(q -c "SELECT sum(points) FROM interchange WHERE batch_id = $batch")" \
		"$(q -c "SELECT sum(redeemed_points - redeem_reversed_points) FROM batch_lines WHERE batch_id = $batch")"
	t_is "$model: redeemed points are the ledger's redemptions" \
		"$(q -c "SELECT sum(redeemed_points) FROM batch_lines WHERE batch_id = $batch")" \
		"$(q -c "SELECT coalesce(sum(points), 0) FROM entries WHERE type = 'redeem'")"
	t_is "$model: one payment per partner with a non-zero net" \
		"$(q -c "SELECT count(*) FROM payments WHERE batch_id = $batch")" \
		"$(q -c "SELECT count(*) FROM batch_lines WHERE batch_id = $batch AND net_minor <> 0")"
	show1=$("$PTS_BIN/pointsctl" --db "$admin" settle show "$batch" --format json)
	sha1=$(q -c "SELECT sha256 FROM settlement_batches WHERE id = $batch")
	"$PTS_BIN/pointsctl" --db "$admin" settle --period prop --receipt-key "$PTS_CERTS/receipt.key" >/dev/null
	show2=$("$PTS_BIN/pointsctl" --db "$admin" settle show "$batch" --format json)
	sha2=$(q -c "SELECT sha256 || ' ' || count(*) OVER () FROM settlement_batches")
	t_is "$model: settling again returns the identical batch" "$sha2" "$sha1 1"
	t_check "$model: settle show is byte for byte the same" test "$show1" = "$show2"
	t_is "$model: the stored document hashes to its sha256" \
		"$(q -c "SELECT document FROM settlement_batches WHERE id = $batch" | tr -d '\n' | sha256sum | cut -c1-64)" "$sha1"
	"$PTS_BIN/pointsctl" --db "$admin" reconcile >"$W/reconcile.$model" 2>&1
	t_is "$model: reconcile finds the ledger whole" "$?" 0
}

run_model prepaid
run_model on_redemption
t_done
