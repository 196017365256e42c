#!/bin/bash
# 30_settlement.sh - settlement end to end on throwaway databases: rounding,
# the worked example of settlement.md §4 in both models, immutability,
# journal balance, DST and ISO-week periods, JPY, and the seal chain
# recomputed here with jq, xxd, sha256sum and openssl.
#
# Environment: PTS_DB_ADMIN (superuser conninfo), PTS_BIN (pointsctl),
# PTS_CERTS (receipt.key; a fresh Ed25519 key is made if it is missing).
set -uo pipefail

# shellcheck source=tests/integration/sqltest.sh
. "$(dirname "$0")/sqltest.sh"
KEY=${PTS_CERTS:-$TMP}/receipt.key
[[ -f $KEY ]] || { KEY=$TMP/receipt.key; openssl genpkey -algorithm ed25519 -out "$KEY" 2>/dev/null; }

# a fresh database per scenario; conninfo in DB
newdb() { sqltest_newdb "pts_settle_$1_$$"; }

# fixtures: partners, t_post() (sqltest.sh), a backdated issue (each
# scenario sets its own rate cards)
fixtures() {
	sqltest_fixtures
	q >/dev/null <<'SQL'
CREATE FUNCTION t_issue_at(p text, id text, m text, n bigint, at timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE v_e bigint := nextval('entries_id_seq'); v_a bigint; v_l bigint; v_p text := period_for(at);
	v_c rate_cards;
BEGIN
	v_a := ledger_member_account(m);
	v_c := rate_card_at(p, at);
	INSERT INTO messages (partner_id, msg_id, entry_id, jws, sha256, kid, type, member, points, balance, accepted_at, period)
	VALUES (p, id, v_e, 'jws.' || id, repeat('0', 64), 'k1', 'issue', m, n, 0, at, v_p);
	PERFORM post_write_entry(v_e, v_p, p, id, 'issue', m, v_a, n, at, NULL, NULL);
	WITH l AS (INSERT INTO lots (account_id, member, partner_id, entry_id, points, remaining, issued_at, expires_at)
		VALUES (v_a, m, p, v_e, n, n, at, lot_expires_at(at)) RETURNING lots.id)
	INSERT INTO lot_moves (entry_id, seq, lot_id, points) SELECT v_e, 1, l.id, n FROM l;
	RETURN v_e;
END $$;
SQL
}

# the canonical lines of a period, built here with jq -cS, and their chain
chain_of() {
	local period=$1 prev=$2 h line
	h=$prev
	while IFS= read -r line; do
		h=$( { printf '%s' "$h" | xxd -r -p; printf '%s\n' "$line"; } | sha256sum | cut -c1-64)
	done < <(q -c "SELECT json_strip_nulls(json_build_object('entry', e.id,
		'accepted_at', to_char(e.accepted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
		'period', e.period, 'kind', e.kind, 'partner', e.partner_id, 'id', e.msg_id, 'type', e.type,
		'member', e.member, 'points', e.points, 'reverses', o.msg_id,
		'transfers', (SELECT json_agg(json_build_object('debit', da.name, 'credit', ca.name, 'points', t.points) ORDER BY t.id)
			FROM transfers t JOIN accounts da ON da.id = t.debit_account JOIN accounts ca ON ca.id = t.credit_account
			WHERE t.entry_id = e.id),
		'lots', (SELECT json_agg(json_build_object('lot', m.lot_id, 'points', m.points) ORDER BY m.seq)
			FROM lot_moves m WHERE m.entry_id = e.id),
		'jws', g.jws, 'receipt', r.receipt))
		FROM entries e LEFT JOIN entries o ON o.id = e.reverses_entry LEFT JOIN messages g ON g.entry_id = e.id
		LEFT JOIN receipts r ON r.entry_id = e.id WHERE e.period = '$period' ORDER BY e.id" | jq -cS .)
	echo "$h"
}

b64url_dec() { local s=$1; s=${s//-/+}; s=${s//_//}; while (( ${#s} % 4 )); do s+='='; done; printf '%s' "$s" | base64 -d; }

# the seal of a period: chain recomputed, prev linked, signature verified
check_seal() {
	local period=$1 want_prev=$2 row chain prev seal h p s payload
	row=$(q -F' ' -c "SELECT chain, prev, seal FROM period_seals WHERE period = '$period'")
	read -r chain prev seal <<<"$row"
	is "$period: seal links to the previous seal" "$prev" "$want_prev"
	is "$period: chain recomputed with jq -cS and sha256sum" "$(chain_of "$period" "$prev")" "$chain"
	IFS=. read -r h p s <<<"$seal"
	payload=$(b64url_dec "$p")
	is "$period: seal payload carries the chain" "$(jq -r .chain <<<"$payload")" "$chain"
	is "$period: seal header" "$(b64url_dec "$h" | jq -c '[.alg, .typ]')" '["EdDSA","points-seal+jwt"]'
	printf '%s.%s' "$h" "$p" >"$TMP/si"
	b64url_dec "$s" >"$TMP/sig"
	openssl pkey -in "$KEY" -pubout -out "$TMP/pub.pem" 2>/dev/null
	if openssl pkeyutl -verify -pubin -inkey "$TMP/pub.pem" -rawin -in "$TMP/si" -sigfile "$TMP/sig" >/dev/null 2>&1; then
		ok "$period: seal signature verifies with openssl"
	else
		not_ok "$period: seal signature verifies with openssl"
	fi
	SEAL_CHAIN=$chain
}

check_balanced() {
	local b=$1
	is "batch $b: journal debits = credits, every partner settled" "$(q -c "SELECT count(*) FROM (
		SELECT debit AS a, amount_minor AS v FROM money_journal WHERE batch_id = $b
		UNION ALL SELECT credit, -amount_minor FROM money_journal WHERE batch_id = $b) x
		WHERE a LIKE 'partner:%' GROUP BY a HAVING sum(v) <> 0")" ""
	is "batch $b: batch sums to zero" "$(q -c "SELECT coalesce(sum(net_minor), 0) + (SELECT operator_net_minor
		FROM settlement_batches WHERE id = $b) FROM batch_lines WHERE batch_id = $b")" "0"
	is "batch $b: bank = operator keeps" "$(q -c "SELECT sum(CASE WHEN debit = 'settlement:bank' THEN amount_minor
		ELSE -amount_minor END) + (SELECT operator_net_minor FROM settlement_batches WHERE id = $b)
		FROM money_journal WHERE batch_id = $b AND 'settlement:bank' IN (debit, credit)")" "0"
}

# the worked example (settlement.md §4) in a 3-second period ending now
worked_example() {
	q >/dev/null <<'SQL'
INSERT INTO rate_cards (partner_id, issue_price_micros, redeem_price_micros, clearing_fee_micros, effective_from)
VALUES ('acme', 10000, 8000, 1000, '2020-01-01'), ('globex', 12000, 9000, 1000, '2020-01-01');
INSERT INTO periods (label, cycle, timezone, starts_at, ends_at)
VALUES ('2026-01-01', 'daily', 'UTC', now() - interval '1 hour', now() + interval '3 seconds');
SQL
	is "worked example posts" "$(q -c "SELECT t_post('acme', 'a1', 'issue', 'M1', 10000)" \
		-c "SELECT t_post('acme', 'a2', 'issue', 'M2', 5000)" -c "SELECT t_post('globex', 'g1', 'issue', 'M1', 2000)" \
		-c "SELECT t_post('globex', 'g2', 'redeem', 'M1', 8000)" -c "SELECT t_post('acme', 'a3', 'redeem', 'M2', 1000)" \
		-c "SELECT t_post('acme', 'a4', 'reverse', 'M2', 500, 'a2')" | cut -d' ' -f1 | sort | uniq -c | xargs)" "6 posted"
}

run_model() {
	local model=$1 acme=$2 globex=$3 keeps=$4 out b out2
	newdb "$model"
	fixtures
	"$CTL" --db "$DB" settings set model "$model" >/dev/null || not_ok "settings set model $model"
	worked_example
	out=$("$CTL" --db "$DB" settle --period 2026-01-01 --receipt-key "$KEY" 2>&1)
	[[ $? -ne 0 && $out == *"is open until"* ]] && ok "$model: open period refused: ${out%%$'\n'*}" ||
		not_ok "$model: open period refused" "$out"
	out=$("$CTL" --db "$DB" settings set model prepaid 2>&1)
	[[ $? -eq 1 && $out == *"fixed once the first message is posted"* ]] && ok "$model: model fixed after the first message" ||
		not_ok "$model: model fixed" "$out"
	sleep 3.2
	out=$("$CTL" --db "$DB" settle --receipt-key "$KEY" 2>&1) || not_ok "$model: settle" "$out"
	b=$(q -c "SELECT id FROM settlement_batches WHERE period = '2026-01-01'")
	is "$model: acme net" "$(q -c "SELECT net_minor || ' ' || direction FROM batch_lines WHERE batch_id = $b AND partner_id = 'acme'")" "$acme"
	is "$model: globex net" "$(q -c "SELECT net_minor || ' ' || direction FROM batch_lines WHERE batch_id = $b AND partner_id = 'globex'")" "$globex"
	is "$model: operator keeps" "$(q -c "SELECT document::jsonb #>> '{operator,keeps}' FROM settlement_batches WHERE id = $b")" "$keeps"
	is "$model: interchange points" "$(q -c "SELECT string_agg(issuer || '>' || redeemer || '=' || points, ' ' ORDER BY issuer, redeemer) FROM interchange WHERE batch_id = $b")" "acme>acme=1000 acme>globex=8000"
	check_balanced "$b"
	"$CTL" --db "$DB" settle show "$b" --format json >"$TMP/doc1"
	out2=$("$CTL" --db "$DB" settle --period 2026-01-01 --receipt-key "$KEY" 2>&1)
	"$CTL" --db "$DB" settle show "$b" --format json >"$TMP/doc2"
	[[ $out2 == "batch $b "* ]] && cmp -s "$TMP/doc1" "$TMP/doc2" && ok "$model: settling twice returns the same batch, same bytes" ||
		not_ok "$model: settling twice" "$out2"
	is "$model: stored sha256 is the document's" "$(head -c -1 "$TMP/doc1" | sha256sum | cut -c1-64)" \
		"$(q -c "SELECT sha256 FROM settlement_batches WHERE id = $b")"
	is "$model: document is canonical (jq -cS)" "$(jq -cS . "$TMP/doc1")" "$(cat "$TMP/doc1")"
	out=$(q -c "UPDATE settlement_batches SET model = 'x'" 2>&1)
	[[ $out == *append_only* ]] && ok "$model: batches are append-only" || not_ok "$model: append-only" "$out"
	check_seal 2026-01-01 0000000000000000000000000000000000000000000000000000000000000000
}

# --- rounding
newdb round
is "half-even rounding" "$(q -c "SELECT string_agg(round_half_even_micros(x, e)::text, ' ' ORDER BY n)
	FROM (VALUES (1, 2.5, 6), (2, 3.5, 6), (3, -2.5, 6), (4, 12345, 2), (5, 5000, 2), (6, 15000, 2),
	(7, -15000, 2), (8, 25000, 2), (9, 1500000, 0), (10, 2500000, 0), (11, 2500001, 0)) v(n, x, e)")" \
	"2 4 -2 1 0 2 -2 2 2 2 3"
is "money format" "$(q -c "SELECT money_format_minor(13700, 2) || ' ' || money_format_minor(-4800, 2) || ' ' ||
	money_format_minor(5, 2) || ' ' || money_format_minor(7, 0)")" "137.00 -48.00 0.05 7"
out=$("$CTL" --db "$DB" settings set timezone Mars/Base 2>&1)
[[ $? -eq 1 && $out == *"unknown time zone"* ]] && ok "unknown time zone refused" || not_ok "unknown time zone refused" "$out"
"$CTL" --db "$DB" settings set currency jpy >/dev/null && is "currency JPY has exponent 0" \
	"$("$CTL" --db "$DB" --json settings | jq -c '[.currency, .currency_exponent]')" '["JPY",0]'

# --- the worked example, both models, and a second period chained to the first
run_model prepaid "13700 pay" "-4800 receive" "89.00"
FIRST=$SEAL_CHAIN
q >/dev/null -c "INSERT INTO periods (label, cycle, timezone, starts_at, ends_at)
	SELECT '2026-01-02', 'daily', 'UTC', ends_at, now() + interval '2 seconds' FROM periods WHERE label = '2026-01-01'"
q >/dev/null -c "SELECT t_post('globex', 'g3', 'reverse', 'M1', 3000, 'g2')" -c "SELECT t_post('acme', 'a5', 'redeem', 'M1', 100)"
sleep 2.2
"$CTL" --db "$DB" settle --receipt-key "$KEY" >/dev/null 2>&1 || not_ok "second period settles"
B2=$(q -c "SELECT id FROM settlement_batches WHERE period = '2026-01-02'")
is "prepaid: redeem reversal charged to globex" "$(q -c "SELECT redeem_reversed_minor || ' ' || net_minor FROM batch_lines WHERE batch_id = $B2 AND partner_id = 'globex'")" "2700 2700"
check_balanced "$B2"
check_seal 2026-01-02 "$FIRST"
is "settle list: one line per batch, id first" "$("$CTL" --db "$DB" settle list | tail -n +2 | awk '{print $1, $2, $3, $4}' | xargs)" \
	"1 2026-01-01 prepaid CNY 2 2026-01-02 prepaid CNY"
is "settle show csv: acme net" "$("$CTL" --db "$DB" settle show 1 --format csv | grep ',acme,net,')" "1,2026-01-01,CNY,acme,net,13700,137.00"
"$CTL" --db "$DB" settle show 1 | grep -q '137.00' && ok "settle show table has major units" || not_ok "settle show table"
is "partner statements: acme, newest first" "$(q -c "SELECT partner_settlements('acme')" | jq -c '[.[] | [.batch, .net, .direction]]')" \
	'[[2,"-0.80","receive"],[1,"137.00","pay"]]'
is "partner statement: own line only" "$(q -c "SELECT partner_settlement('globex', 1)" | jq -c '[.line.partner, .line.net_minor, .payment.amount]')" '["globex",-4800,"48.00"]'
is "partner statement: none for a stranger" "$(q -c "SELECT partner_settlement('nobody', 1) IS NULL")" "t"
run_model on_redemption "8100 pay" "-7200 receive" "9.00"

# --- JPY, half-even per line item, DST day, ISO week across the year end
newdb jpy
fixtures
"$CTL" --db "$DB" settings set currency JPY >/dev/null
"$CTL" --db "$DB" settings set timezone Europe/Berlin >/dev/null
q >/dev/null <<'SQL'
INSERT INTO rate_cards (partner_id, issue_price_micros, redeem_price_micros, clearing_fee_micros, effective_from)
VALUES ('acme', 500000, 400000, 0, '2020-01-01'), ('globex', 500000, 400000, 0, '2020-01-01');
SELECT t_issue_at('acme', 'j1', 'M1', 2, '2026-03-28 23:00:00Z');
SELECT t_issue_at('acme', 'j2', 'M1', 1, '2026-03-29 21:59:59Z');
SELECT t_issue_at('globex', 'j3', 'M2', 5, '2026-03-29 12:00:00Z');
SQL
is "DST day: 2026-03-29 in Europe/Berlin lasts 23 hours" "$(q -c "SELECT ends_at - starts_at FROM periods WHERE label = '2026-03-29'")" "23:00:00"
is "DST day: both edge entries in it" "$(q -c "SELECT count(*) FROM entries WHERE period = '2026-03-29'")" "3"
"$CTL" --db "$DB" settings set cycle weekly >/dev/null
"$CTL" --db "$DB" settings set timezone UTC >/dev/null
q >/dev/null -c "SELECT t_issue_at('acme', 'w1', 'M3', 3, '2025-01-05 23:59:59Z')"
is "ISO week across the year end" "$(q -F' ' -c "SELECT label, starts_at AT TIME ZONE 'UTC', ends_at AT TIME ZONE 'UTC' FROM periods WHERE label LIKE '%W%'")" \
	"2025-W01 2024-12-30 00:00:00 2025-01-06 00:00:00"
"$CTL" --db "$DB" settle --receipt-key "$KEY" >/dev/null 2>&1 || not_ok "JPY periods settle"
is "JPY: 3 x 0.5 = 1.5 -> 2, 5 x 0.5 = 2.5 -> 2 (half even, once per line item)" \
	"$(q -c "SELECT string_agg(l.partner_id || '=' || l.issued_minor, ' ' ORDER BY l.partner_id) FROM batch_lines l
		JOIN settlement_batches b ON b.id = l.batch_id WHERE b.period = '2026-03-29'")" "acme=2 globex=2"
is "JPY: amounts without decimals" "$(q -c "SELECT document::jsonb #>> '{operator,keeps}' FROM settlement_batches WHERE period = '2026-03-29'")" "4"
check_seal 2025-W01 0000000000000000000000000000000000000000000000000000000000000000
check_seal 2026-03-29 "$SEAL_CHAIN"

exit $FAILED
