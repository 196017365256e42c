#!/bin/bash
# 40_expiry.sh - lot expiry on a throwaway database: validity rules and
# month-end edges, as-of boundaries, available balance before the sweep,
# redemption after partial expiry, a reversal restoring points into an
# expired lot (swept by the next run), idempotency, the daily job and its
# lock, expiry per issuer in settlement, expiry racing with postings.
#
# Environment: PTS_DB_ADMIN (superuser conninfo), PTS_BIN (pointsctl).
set -uo pipefail

# shellcheck source=tests/integration/sqltest.sh
. "$(dirname "$0")/sqltest.sh"
sqltest_newdb "pts_expiry_$$"

# fixtures: partners, cards, t_post() (sqltest.sh), t_age() makes a lot old
sqltest_fixtures
sqltest_cards
q >/dev/null <<'SQL'
-- the lot of message (p, id) issued a year before at and expiring at at
CREATE FUNCTION t_age(p_partner text, p_id text, p_at timestamptz) RETURNS bigint
LANGUAGE sql AS $$
	UPDATE lots l SET issued_at = p_at - interval '1 year', expires_at = p_at
	FROM messages m WHERE m.partner_id = p_partner AND m.msg_id = p_id AND l.entry_id = m.entry_id
	RETURNING l.id
$$;
SQL

# ------------------------------------------------------------------ validity rules
lx() { # TZ RULE N ISSUED_AT -> expires_at in UTC
	q -c "SELECT to_char(ledger_lot_expiry('$4', '$2', $3, '$1') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
}
is "validity: 31 Jan + 1 month (non-leap) ends after 28 Feb" "$(lx UTC months 1 '2027-01-31 12:00Z')" "2027-03-01T00:00:00Z"
is "validity: 31 Jan + 1 month (leap year) ends after 29 Feb" "$(lx UTC months 1 '2028-01-31 12:00Z')" "2028-03-01T00:00:00Z"
is "validity: 31 Mar + 1 month ends after 30 Apr" "$(lx UTC months 1 '2027-03-31 08:00Z')" "2027-05-01T00:00:00Z"
is "validity: 29 Feb + 12 months ends after 28 Feb" "$(lx UTC months 12 '2028-02-29 08:00Z')" "2029-03-01T00:00:00Z"
is "validity: 24 months, first instant of the local day after" "$(lx Europe/Berlin months 24 '2026-11-22 10:00Z')" "2028-11-22T23:00:00Z"
is "validity: local date of issuance counts (23:30Z is the next day in Berlin)" \
	"$(lx Europe/Berlin months 1 '2027-01-31 23:30Z')" "2027-03-01T23:00:00Z"
is "validity: calendar year N=1 ends on 1 January two years on" "$(lx UTC calendar_year 1 '2026-11-22 10:00Z')" "2028-01-01T00:00:00Z"
is "validity: calendar year in a zone (local new year)" "$(lx Europe/Berlin calendar_year 2 '2026-12-31 23:30Z')" "2029-12-31T23:00:00Z"
is "validity: expiry on a DST day starts at local midnight" "$(lx Europe/Berlin months 1 '2026-02-28 12:00Z')" "2026-03-28T23:00:00Z"

# ------------------------------------------------------------------ the daily job (before any run)
q -c "SELECT t_post('acme', 'f1', 'issue', 'M7', 9)" >/dev/null
q -c "SELECT t_age('acme', 'f1', '2019-06-01Z')" >/dev/null
# another session holds the expiry lock: the daily job skips at once
psql -X -q -At "$DB" -c "SELECT pg_advisory_lock(expiry_lock_key()), pg_sleep(3)" >/dev/null &
LOCKER=$!
sleep 1
is "expire_daily skips at once while another session holds the expiry lock" \
	"$(q -c "SET statement_timeout = '2s'" -c "SELECT ran || ' ' || entries FROM expire_daily()")" "false 0"
wait "$LOCKER"
is "expire_daily as pointsd: runs when no run today" "$(q -c "SET ROLE pointsd" -c "SELECT ran || ' ' || entries || ' ' || points FROM expire_daily()")" "true 1 9"
is "expire_daily: at most once per local day" "$(q -c "SELECT ran::text FROM expire_daily()")" "false"

# ------------------------------------------------------------------ boundaries and available balance
is "issues posted" "$(q -c "SELECT t_post('acme', 'a1', 'issue', 'M1', 100)" -c "SELECT t_post('globex', 'g1', 'issue', 'M1', 50)" \
	-c "SELECT t_post('acme', 'a2', 'issue', 'M2', 30)" | flat)" "posted 100 posted 150 posted 30"
LOT_A=$(q -c "SELECT t_age('acme', 'a1', '2020-01-01 00:00:00Z')")
is "before the sweep the expired lot is not available" "$(q -c "SELECT member_summary('M1')::jsonb ->> 'balance'")" "50"
is "a redeem may not use the expired lot" "$(q -c "SELECT t_post('acme', 'r1', 'redeem', 'M1', 60)")" "rejected insufficient_points -"
is "a redeem within the unexpired lots is posted" "$(q -c "SELECT t_post('acme', 'r2', 'redeem', 'M1', 20)")" "posted 30"
is "the redeem consumed only the unexpired lot" "$(q -c "SELECT l.partner_id || ':' || -m.points FROM lot_moves m JOIN lots l ON l.id = m.lot_id
	JOIN messages g ON g.entry_id = m.entry_id WHERE g.msg_id = 'r2'")" "globex:20"

out=$(ctl expire --as-of '2019-12-31T23:59:59Z' 2>&1)
is "as-of one second before expires_at: nothing expires" "$?:$out" "0:expired nothing: no lot with remaining points expired by 2019-12-31T23:59:59Z"
out=$(ctl expire --as-of '2020-01-01T00:00:00Z' 2>&1)
is "as-of at expires_at: the lot expires" "$?:$out" "0:expired 100 points of 1 members (1 entries) as of 2020-01-01T00:00:00Z"
is "expiry entry: kind, member, points, stamped now, current period" \
	"$(q -c "SELECT kind || ' ' || member || ' ' || points || ' ' || (accepted_at > now() - interval '1 minute') || ' ' || (period = period_for(clock_timestamp()))
		FROM entries WHERE kind = 'expiry' AND member = 'M1'")" "expiry M1 100 true true"
is "expiry transfer: member -> breakage" "$(q -c "SELECT da.name || '>' || ca.name || ':' || t.points FROM transfers t
	JOIN entries e ON e.id = t.entry_id JOIN accounts da ON da.id = t.debit_account JOIN accounts ca ON ca.id = t.credit_account
	WHERE e.kind = 'expiry' AND e.member = 'M1'")" "member:M1>breakage:100"
is "expiry lot move: seq 1, the lot, -remaining" "$(q -c "SELECT m.seq || ':' || m.lot_id || ':' || m.points FROM lot_moves m
	JOIN entries e ON e.id = m.entry_id WHERE e.kind = 'expiry' AND e.member = 'M1'")" "1:$LOT_A:-100"
is "account and lots after the sweep" "$(q -c "SELECT (credits_posted - debits_posted) || ' ' || (SELECT sum(remaining) FROM lots WHERE member = 'M1')
	FROM accounts WHERE name = 'member:M1'")" "30 30"
is "available balance unchanged by the sweep" "$(q -c "SELECT member_summary('M1')::jsonb ->> 'balance'")" "30"
out=$(ctl expire --as-of '2020-01-01T00:00:00Z' 2>&1)
is "idempotent: a second run at the same as-of posts nothing" "$?:$out" "0:expired nothing: no lot with remaining points expired by 2020-01-01T00:00:00Z"
out=$(ctl expire 2>&1)
is "a run at now finds nothing more" "$?:${out%%:*}" "0:expired nothing"
is "one expiry entry for M1 in all" "$(q -c "SELECT count(*) FROM entries WHERE kind = 'expiry' AND member = 'M1'")" "1"
is "every run recorded in expiry_runs" "$(q -c "SELECT count(*) || ' ' || sum(entries) || ' ' || sum(points) FROM expiry_runs")" "5 2 109"
out=$(ctl expire --as-of '2999-01-01T00:00:00Z' 2>&1)
is "an as-of in the future is refused" "$?:$out" "1:pointsctl: expire: as-of 2999-01-01T00:00:00Z is in the future"
out=$(ctl expire --as-of 'yesterday-ish' 2>&1)
has "a malformed as-of is refused" "$?:$out" "1:pointsctl: expire:"
is "reconcile holds after expiry" "$(ctl reconcile >/dev/null 2>&1; echo $?)" "0"

# ------------------------------------------------------------------ redemption after partial expiry
is "M3: issue, redeem part of the lot" "$(q -c "SELECT t_post('acme', 'c1', 'issue', 'M3', 100)" -c "SELECT t_post('globex', 'c2', 'redeem', 'M3', 40)" | flat)" \
	"posted 100 posted 60"
q -c "SELECT t_age('acme', 'c1', '2021-06-01Z')" >/dev/null
is "partly consumed lot: only the rest expires" "$(ctl expire --as-of '2021-06-01T00:00:00Z' 2>&1)" "expired 60 points of 1 members (1 entries) as of 2021-06-01T00:00:00Z"
is "M3: new points can be redeemed after the expiry" "$(q -c "SELECT t_post('acme', 'c3', 'issue', 'M3', 10)" -c "SELECT t_post('acme', 'c4', 'redeem', 'M3', 10)" -c "SELECT t_post('acme', 'c5', 'redeem', 'M3', 1)" | flat)" \
	"posted 10 posted 0 rejected insufficient_points -"

# ------------------------------------------------------------------ reversal into an expired lot
is "M4: issue and redeem" "$(q -c "SELECT t_post('acme', 'd1', 'issue', 'M4', 100)" -c "SELECT t_post('globex', 'd2', 'redeem', 'M4', 70)" | flat)" "posted 100 posted 30"
LOT_D=$(q -c "SELECT t_age('acme', 'd1', '2022-01-01Z')")
is "M4: the rest of the lot expires" "$(ctl expire --as-of '2022-01-01T00:00:00Z' 2>&1)" "expired 30 points of 1 members (1 entries) as of 2022-01-01T00:00:00Z"
is "reverse of the redeem: the restored points rejoin the expired lot (not available)" \
	"$(q -c "SELECT t_post('globex', 'd3', 'reverse', 'M4', 50, 'd2')")" "posted 0"
is "the restored points sit in the expired lot and in the account" \
	"$(q -c "SELECT remaining || ' ' || (SELECT credits_posted - debits_posted FROM accounts WHERE name = 'member:M4') FROM lots WHERE id = $LOT_D")" "50 50"
is "reconcile holds with restored points in an expired lot" "$(ctl reconcile >/dev/null 2>&1; echo $?)" "0"
is "the next run sweeps the restored points" "$(ctl expire 2>&1)" "expired 50 points of 1 members (1 entries) as of now"
is "second expiry entry of M4: its lot move" "$(q -c "SELECT m.lot_id || ':' || m.points FROM lot_moves m JOIN entries e ON e.id = m.entry_id
	WHERE e.kind = 'expiry' AND e.member = 'M4' ORDER BY e.id DESC LIMIT 1")" "$LOT_D:-50"
is "M4 ends at zero" "$(q -c "SELECT credits_posted - debits_posted FROM accounts WHERE name = 'member:M4'")" "0"

# ------------------------------------------------------------------ several lots of several members in one run
q -c "SELECT t_post('acme', 'e1', 'issue', 'M5', 10)" -c "SELECT t_post('globex', 'e2', 'issue', 'M5', 20)" \
	-c "SELECT t_post('acme', 'e3', 'issue', 'M6', 5)" -c "SELECT t_post('acme', 'e4', 'issue', 'M5', 7)" >/dev/null
q -c "SELECT t_age('acme', 'e1', '2023-02-01Z')" -c "SELECT t_age('globex', 'e2', '2023-01-01Z')" \
	-c "SELECT t_age('acme', 'e3', '2023-01-15Z')" >/dev/null
is "one entry per member per run" "$(ctl expire --as-of '2023-03-01T00:00:00Z' 2>&1)" "expired 35 points of 2 members (2 entries) as of 2023-03-01T00:00:00Z"
is "lot moves in expiry order, seq 1.." "$(q -c "SELECT e.member || ':' || m.seq || ':' || l.partner_id || ':' || m.points FROM lot_moves m
	JOIN entries e ON e.id = m.entry_id JOIN lots l ON l.id = m.lot_id
	WHERE e.kind = 'expiry' AND e.member IN ('M5', 'M6') ORDER BY e.member, m.seq" | flat)" \
	"M5:1:globex:-20 M5:2:acme:-10 M6:1:acme:-5"
is "the unexpired lot of M5 stays" "$(q -c "SELECT member_summary('M5')::jsonb ->> 'balance'")" "7"

# ------------------------------------------------------------------ settlement: expiry per issuer, in points
P=$(q -c "SELECT period_for(clock_timestamp())")
is "settle_period_sums reports expired points per issuer" \
	"$(q -c "SELECT string_agg(partner_id || '=' || expired_points, ' ' ORDER BY partner_id) FROM settle_period_sums('$P')")" \
	"acme=264 globex=20"

# ------------------------------------------------------------------ expiry racing with postings
# 40 members with an expired lot (100) and a valid one (100); 4 sessions
# redeem 60 from each while expiry runs: every redeem is posted from the
# valid lot, the expired lots all go to breakage, nothing is lost
q >/dev/null <<'SQL'
SELECT t_post('acme', 'x' || i || 'a', 'issue', 'X' || i, 100), t_post('globex', 'x' || i || 'b', 'issue', 'X' || i, 100)
FROM generate_series(1, 40) i;
SELECT t_age('acme', 'x' || i || 'a', '2025-01-01Z') FROM generate_series(1, 40) i;
SQL
before=$(q -c "SELECT coalesce(sum(t.points), 0) FROM transfers t JOIN accounts a ON a.id = t.credit_account WHERE a.kind = 'breakage'")
pids=()
for s in 0 1 2 3; do
	# one transaction per redeem, as pointsd posts them (a statement posting
	# several members in one transaction would lock them out of member order)
	for ((i = 1; i <= 40; i++)); do
		((i % 4 == s)) && echo "SELECT t_post('globex', 'xr$i', 'redeem', 'X$i', 60);"
	done | q >"$TMP/race$s" 2>&1 &
	pids+=($!)
done
ctl expire --as-of '2025-01-01T00:00:00Z' >"$TMP/race_expire" 2>&1 &
pids+=($!)
for p in "${pids[@]}"; do wait "$p"; done
is "race: every redeem posted" "$(cat "$TMP"/race[0-3] | grep -c '^posted 40$')" "40"
after=$(q -c "SELECT coalesce(sum(t.points), 0) FROM transfers t JOIN accounts a ON a.id = t.credit_account WHERE a.kind = 'breakage'")
is "race: the expired lots went to breakage, exactly once" "$((after - before))" "4000"
[[ $((after - before)) == 4000 ]] || sed 's/^/# expire: /' "$TMP/race_expire"
is "race: redeems consumed only valid lots" "$(q -c "SELECT count(*) FROM lot_moves m JOIN lots l ON l.id = m.lot_id
	JOIN messages g ON g.entry_id = m.entry_id WHERE g.msg_id LIKE 'xr%' AND l.partner_id <> 'globex'")" "0"
is "race: balances" "$(q -c "SELECT count(*) || ' ' || min(credits_posted - debits_posted) || ' ' || max(credits_posted - debits_posted)
	FROM accounts WHERE name LIKE 'member:X%'")" "40 40 40"
out=$(ctl reconcile 2>&1)
is "race: reconcile holds" "$?" "0"

exit $FAILED
