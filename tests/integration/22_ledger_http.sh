#!/bin/bash
# 22_ledger_http.sh - the ledger through the real protocol: the worked example
# of settlement.md §4 (balances, lots, interchange, transfers), lot order by
# expiry over several lots, reversal of a redeem restoring the last consumed
# lot first, GET /v1/members, and the balance invariants of ledger.md §1.
# Members and ids are unique to this run; the validity setting is restored.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd -P)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

ID=l22-$RUN
M1=w1-$RUN
M2=w2-$RUN
M3=w3-$RUN

# post PARTNER TYPE ID MEMBER POINTS [REVERSES]: signed by the partner's key
# with openssl; wants 201; ENTRY and BAL of the reply
post() {
	local p=$1 type=$2 id=$3 member=$4 points=$5 rev=${6:-} extra=
	[[ -n $rev ]] && extra=",\"reverses\":\"$rev\""
	post_jws "$p" "$(partner_jws "$p" "$(payload "$type" "$id" "$member" "$points" "$(date +%s)" "$p" "$extra")")"
	ENTRY=$(jget .entry)
	BAL=$(jget .balance)
	if [[ $ST != 201 ]]; then
		not_ok "$p $type $id: 201" "status $ST: $BODY"
		return 1
	fi
}
q1() { sql "$1" | head -n 1; }
lot_of() { q1 "SELECT l.remaining FROM lots l JOIN messages m ON m.entry_id = l.entry_id WHERE m.partner_id = '$1' AND m.msg_id = '$2'"; }
lot_id() { q1 "SELECT l.id FROM lots l JOIN messages m ON m.entry_id = l.entry_id WHERE m.partner_id = '$1' AND m.msg_id = '$2'"; }
# "lot:points ..." moves of an entry in seq order
moves_of() { sql "SELECT string_agg(lot_id || ':' || points, ' ' ORDER BY seq) FROM lot_moves WHERE entry_id = $1"; }
# "debit>credit:points ..." transfers of an entry, by account name
transfers_of() {
	sql "SELECT string_agg(d.name || '>' || c.name || ':' || t.points, ' ' ORDER BY t.id)
		FROM transfers t JOIN accounts d ON d.id = t.debit_account JOIN accounts c ON c.id = t.credit_account
		WHERE t.entry_id = $1"
}

# --- the worked example of settlement.md §4 ----------------------------------

post acme issue "$ID-1" "$M1" 10000 && E1=$ENTRY
is "1. acme issues 10,000 to M1: balance 10000" "$BAL" 10000
post acme issue "$ID-2" "$M2" 5000 && E2=$ENTRY
is "2. acme issues 5,000 to M2: balance 5000" "$BAL" 5000
post globex issue "$ID-3" "$M1" 2000 && E3=$ENTRY
is "3. globex issues 2,000 to M1: balance 12000" "$BAL" 12000
post globex redeem "$ID-4" "$M1" 8000 && E4=$ENTRY
is "4. M1 redeems 8,000 at globex: balance 4000" "$BAL" 4000
post acme redeem "$ID-5" "$M2" 1000 && E5=$ENTRY
is "5. M2 redeems 1,000 at acme: balance 4000" "$BAL" 4000
post acme reverse "$ID-6" "$M2" 500 "$ID-2" && E6=$ENTRY
is "6. acme reverses 500 of message 2: balance 3500" "$BAL" 3500

req acme GET "/v1/members/$M1"
is "GET /v1/members/M1: balance 4000" "$ST $(jget .balance)" "200 4000"
is "GET /v1/members/M1: nothing expires in 90 days (24-month validity)" "$(jget -c .expiring)" "[]"
is "GET /v1/members/M1: member field" "$(jget .member)" "$M1"
is "GET /v1/members/M2 (asked by globex too): balance 3500" \
	"$(req globex GET "/v1/members/$M2"; jget .balance)" 3500
is "M1: 2,000 left in acme's lot" "$(lot_of acme "$ID-1")" 2000
is "M1: 2,000 left in globex's lot" "$(lot_of globex "$ID-3")" 2000
is "M2: 3,500 left in acme's lot" "$(lot_of acme "$ID-2")" 3500
is "interchange points by lot issuer -> redeeming partner" \
	"$(sql "SELECT string_agg(x, ' ' ORDER BY x) FROM (SELECT l.partner_id || '>' || e.partner_id || ':' || -sum(lm.points) AS x
		FROM lot_moves lm JOIN entries e ON e.id = lm.entry_id JOIN lots l ON l.id = lm.lot_id
		WHERE e.type = 'redeem' AND e.member IN ('$M1', '$M2') GROUP BY l.partner_id, e.partner_id) s")" \
	"acme>acme:1000 acme>globex:8000"
is "redeem at globex took acme's lot only (earliest expiry, then lowest entry)" \
	"$(moves_of "$E4")" "$(lot_id acme "$ID-1"):-8000"
is "reverse of the issue took 500 from that issue's lot" "$(moves_of "$E6")" "$(lot_id acme "$ID-2"):-500"
is "transfers of 1 (issue)" "$(transfers_of "$E1")" "issued:acme>member:$M1:10000"
is "transfers of 3 (globex issue)" "$(transfers_of "$E3")" "issued:globex>member:$M1:2000"
is "transfers of 4 (redeem at globex)" "$(transfers_of "$E4")" "member:$M1>redeemed:globex:8000"
is "transfers of 5 (redeem at acme)" "$(transfers_of "$E5")" "member:$M2>redeemed:acme:1000"
is "transfers of 6 (reverse of an issue)" "$(transfers_of "$E6")" "member:$M2>issued:acme:500"
is "each entry moves exactly its points (Σ debits = Σ credits = points)" \
	"$(sql "SELECT count(*) FROM entries e WHERE e.id IN ($E1,$E2,$E3,$E4,$E5,$E6) AND e.points =
		(SELECT sum(t.points) FROM transfers t WHERE t.entry_id = e.id)")" 6
is "prices stamped: acme issue 0.010000, globex redeem 0.009000, reverse copies 0.010000" \
	"$(sql "SELECT string_agg(coalesce(issue_price_micros::text, '-') || '/' || coalesce(redeem_price_micros::text, '-'), ' ' ORDER BY id)
		FROM entries WHERE id IN ($E1, $E4, $E6)")" "10000/- -/9000 10000/-"
is "clearing fee of the lot's issuer on the redeem's move (acme 0.001000)" \
	"$(q1 "SELECT fee_micros FROM lot_moves WHERE entry_id = $E4")" 1000
is "messages row: reversed_points of message 2" \
	"$(q1 "SELECT reversed_points FROM messages WHERE partner_id = 'acme' AND msg_id = '$ID-2'")" 500
is "the six entries are in one period" \
	"$(q1 "SELECT count(DISTINCT period) FROM entries WHERE id IN ($E1,$E2,$E3,$E4,$E5,$E6)")" 1

# --- several lots: earliest expiry first; reversal restores last consumed first

OLD_N=$(ctl --json settings | jq -r .validity_n)
[[ $OLD_N =~ ^[0-9]+$ ]] || OLD_N=24
at_exit "'$PTS_BIN/pointsctl' --db '$PTS_DB_ADMIN' settings set validity_n $OLD_N"
post acme issue "$ID-a" "$M3" 300             # 24 months (the setting in force)
ctl settings set validity_n 2 >/dev/null || not_ok "settings set validity_n 2"
post globex issue "$ID-b" "$M3" 100           # 2 months
ctl settings set validity_n 1 >/dev/null || not_ok "settings set validity_n 1"
post acme issue "$ID-c" "$M3" 200             # 1 month: expires first
ctl settings set validity_n "$OLD_N" >/dev/null || not_ok "settings set validity_n $OLD_N"
LA=$(lot_id acme "$ID-a") LB=$(lot_id globex "$ID-b") LC=$(lot_id acme "$ID-c")
is "lot expiries: 1 month < 2 months < 24 months" \
	"$(sql "SELECT string_agg(id::text, ' ' ORDER BY expires_at, id) FROM lots WHERE member = '$M3'")" "$LC $LB $LA"
WANT_C=$(sql "SET TIME ZONE 'UTC'; SELECT to_char((current_date + interval '1 month')::date + 1, 'YYYY-MM-DD\"T00:00:00Z\"')" | tail -n 1)
WANT_B=$(sql "SET TIME ZONE 'UTC'; SELECT to_char((current_date + interval '2 months')::date + 1, 'YYYY-MM-DD\"T00:00:00Z\"')" | tail -n 1)
req acme GET "/v1/members/$M3"
is "GET /v1/members/M3: balance 600" "$(jget .balance)" 600
is "GET /v1/members/M3: expiring in 90 days, ascending, the 24-month lot left out" \
	"$(jget -c .expiring)" "[{\"expires_at\":\"$WANT_C\",\"points\":200},{\"expires_at\":\"$WANT_B\",\"points\":100}]"

post globex redeem "$ID-r" "$M3" 250 && ER=$ENTRY
is "redeem 250: balance 350" "$BAL" 350
is "redeem 250 consumed the 1-month lot (200), then the 2-month lot (50)" "$(moves_of "$ER")" "$LC:-200 $LB:-50"
post globex reverse "$ID-rr1" "$M3" 100 "$ID-r" && ERR1=$ENTRY
is "reverse 100 of the redeem: balance 450" "$BAL" 450
is "reverse of a redeem restores the last consumed lot first (50), then the one before (50)" \
	"$(moves_of "$ERR1")" "$LB:50 $LC:50"
is "lots after the partial reversal: 1-month 50, 2-month 100, 24-month 300" \
	"$(lot_of acme "$ID-c") $(lot_of globex "$ID-b") $(lot_of acme "$ID-a")" "50 100 300"
is "transfers of the redeem reversal" "$(transfers_of "$ERR1")" "redeemed:globex>member:$M3:100"
post globex reverse "$ID-rr2" "$M3" 150 "$ID-r" && ERR2=$ENTRY
is "reverse the other 150: the rest of the 1-month lot" "$(moves_of "$ERR2")" "$LC:150"
is "lots after the full reversal: as issued" \
	"$(lot_of acme "$ID-c") $(lot_of globex "$ID-b") $(lot_of acme "$ID-a")" "200 100 300"
post_jws globex "$(partner_jws globex "$(payload reverse "$ID-rr3" "$M3" 1 "$(date +%s)" globex ",\"reverses\":\"$ID-r\"")")"
expect_code "a third reverse of the fully reversed redeem: over_reversal" 422 over_reversal
# a reverse of a redeem never fails for lack of points: spend everything first
post acme redeem "$ID-r2" "$M3" 600
is "redeem all 600 (lots by expiry)" "$BAL" 0
post acme reverse "$ID-rr4" "$M3" 600 "$ID-r2"
is "reverse of a redeem with a zero balance: 201, balance 600" "$ST $BAL" "201 600"

# --- invariants of ledger.md §1 over the whole database ----------------------

is "every member account: stored totals = transfers = Σ lot remaining" \
	"$(sql "SELECT count(*) FROM accounts a WHERE a.kind = 'member' AND NOT (
		a.credits_posted - a.debits_posted =
			coalesce((SELECT sum(points) FROM transfers WHERE credit_account = a.id), 0) -
			coalesce((SELECT sum(points) FROM transfers WHERE debit_account = a.id), 0)
		AND a.credits_posted - a.debits_posted =
			coalesce((SELECT sum(remaining) FROM lots WHERE account_id = a.id), 0))")" 0
is "no member balance is negative" \
	"$(sql "SELECT count(*) FROM accounts WHERE kind = 'member' AND credits_posted < debits_posted")" 0
is "Σ issued − Σ issue reversals = Σ member balances + Σ redeemed net + breakage" \
	"$(sql "WITH n AS (SELECT a.kind, coalesce(sum(CASE WHEN t.credit_account = a.id THEN t.points ELSE -t.points END), 0) AS net
		FROM accounts a JOIN transfers t ON a.id IN (t.debit_account, t.credit_account) GROUP BY a.kind)
		SELECT (SELECT -coalesce(sum(net), 0) FROM n WHERE kind = 'issued') =
			(SELECT coalesce(sum(net), 0) FROM n WHERE kind IN ('member', 'redeemed', 'breakage'))")" t
is "every entry moves exactly its points" \
	"$(sql "SELECT count(*) FROM entries e WHERE e.points <> (SELECT coalesce(sum(points), 0) FROM transfers t WHERE t.entry_id = e.id)")" 0
is "every message of this run has its receipt" \
	"$(sql "SELECT count(*) FILTER (WHERE r.entry_id IS NULL) || ' of ' || count(*) FROM messages m
		LEFT JOIN receipts r ON r.entry_id = m.entry_id WHERE m.msg_id LIKE '$ID-%'")" "0 of 14"

finish
