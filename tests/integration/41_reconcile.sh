#!/bin/bash
# 41_reconcile.sh - pointsctl reconcile on a clean ledger (exit 0, trial
# balance, one-screen summary) and on copies broken on purpose as the
# superuser, one per invariant of ledger.md §1 and several of invariant 6
# (references of the journal tables): each break is named with its account,
# entry or row, the expected and the found value (exit 1).
#
# Environment: PTS_DB_ADMIN (superuser conninfo), PTS_BIN (pointsctl).
set -uo pipefail

# shellcheck source=tests/integration/sqltest.sh
. "$(dirname "$0")/sqltest.sh"
BASE=pts_recon_$$
sqltest_newdb "$BASE"

# a small ledger: issues, redeems across issuers, reversals both ways, expiry
sqltest_fixtures
sqltest_cards
q >/dev/null <<'SQL'
SELECT t_post('acme', 'a1', 'issue', 'M1', 1000), t_post('acme', 'a2', 'issue', 'M2', 500),
	t_post('globex', 'g1', 'issue', 'M1', 200), t_post('globex', 'g2', 'redeem', 'M1', 800),
	t_post('acme', 'a3', 'redeem', 'M2', 100), t_post('acme', 'a4', 'reverse', 'M2', 50, 'a2'),
	t_post('globex', 'g3', 'reverse', 'M1', 300, 'g2'), t_post('acme', 'a5', 'issue', 'M3', 70);
UPDATE lots SET issued_at = '2019-01-01Z', expires_at = '2020-01-01Z'
WHERE entry_id = (SELECT entry_id FROM messages WHERE msg_id = 'a5');
SELECT * FROM expire_lots('2020-01-01Z');
SQL

# ------------------------------------------------------------------ clean ledger
out=$("$CTL" --db "$DB" reconcile 2>&1)
is "clean ledger: exit 0" "$?" "0"
has "clean ledger: summary" "$out" "reconcile: all 6 invariants hold"
has "clean ledger: issued net of issue reversals" "$out" "  issued    2         1770    50       1720"
has "clean ledger: members" "$out" "  member    3         1020    2070     -1050"
has "clean ledger: redeemed net of reversals" "$out" "  redeemed  2         300     900      -600"
has "clean ledger: breakage" "$out" "  breakage  1         0       70       -70"
has "clean ledger: total nets to zero" "$out" "  total     8         3090    3090     0"
is "clean ledger: every invariant ok" "$(grep -cE '^  [1-6] .* ok$' <<<"$out")" "6"
is "clean ledger: fits one screen" "$(( $(wc -l <<<"$out") <= 24 ))" "1"
is "clean ledger: --json" "$("$CTL" --db "$DB" --json reconcile | jq -c '[.invariants[] | .ok]')" "[true,true,true,true,true,true]"

E_A1=$(q -c "SELECT entry_id FROM messages WHERE msg_id = 'a1'")
L_A1=$(q -c "SELECT id FROM lots WHERE entry_id = $E_A1")
T_A1=$(q -c "SELECT id FROM transfers WHERE entry_id = $E_A1")
E_A4=$(q -c "SELECT entry_id FROM messages WHERE msg_id = 'a4'")

# break NAME SQL: a copy of the clean ledger broken by SQL run as the
# superuser; REC gets reconcile's output, RC its exit status, RECJ the
# output of reconcile --json
break_copy() {
	local name=${BASE}_$1
	SQLTEST_DBS+=("$name")
	psql -X -q "$ADMIN" -c "CREATE DATABASE $name TEMPLATE $BASE" >/dev/null || { not_ok "copy for $1"; return 1; }
	psql -X -q -v ON_ERROR_STOP=1 "$ADMIN dbname=$name" -c "$2" >/dev/null || { not_ok "break $1"; return 1; }
	REC=$("$CTL" --db "$ADMIN dbname=$name" reconcile 2>&1)
	RC=$?
	RECJ=$("$CTL" --db "$ADMIN dbname=$name" --json reconcile 2>/dev/null)
	psql -X -q "$ADMIN" -c "DROP DATABASE IF EXISTS $name" >/dev/null 2>&1
}

# ------------------------------------------------------------------ invariant 1
break_copy inv1 "ALTER TABLE entries DISABLE TRIGGER USER;
	UPDATE entries SET points = points + 1 WHERE id = $E_A1;
	ALTER TABLE entries ENABLE TRIGGER USER;"
is "invariant 1 broken: exit 1" "$RC" "1"
has "invariant 1 broken: the entry, expected and found" "$REC" \
	"break: invariant 1: entry $E_A1 (message issue): expected transfers totalling 1001 points, found 1000 points in 1 transfers; entries $E_A1"
has "invariant 1 broken: its lot moves" "$REC" "break: invariant 1: entry $E_A1 (message issue): expected lot moves totalling 1001, found 1000"
has "invariant 1 broken: status line" "$REC" "BROKEN (2)"
has "invariant 1 broken: one line on stderr" "$REC" "pointsctl: reconcile: the ledger does not balance: invariants 1 broken"
is "invariant 1 broken: the others hold" "$(grep -cE '^  [2-6] .* ok$' <<<"$REC")" "5"
break_copy inv1b "ALTER TABLE transfers DISABLE TRIGGER USER;
	UPDATE transfers SET credit_account = (SELECT id FROM accounts WHERE name = 'redeemed:acme')
	WHERE entry_id = $E_A1;
	ALTER TABLE transfers ENABLE TRIGGER USER;"
has "invariant 1 broken: a transfer between the wrong accounts" "$REC" \
	"break: invariant 1: entry $E_A1 (message issue): expected transfers between the accounts of its kind, found other accounts"

# ------------------------------------------------------------------ invariant 2
break_copy inv2 "DO \$\$ DECLARE c text; BEGIN
	SELECT conname INTO c FROM pg_constraint WHERE conrelid = 'accounts'::regclass
	AND pg_get_constraintdef(oid) LIKE '%credits_posted >= debits_posted%';
	EXECUTE format('ALTER TABLE accounts DROP CONSTRAINT %I', c); END \$\$;
	UPDATE accounts SET debits_posted = credits_posted + 5 WHERE name = 'member:M2';"
is "invariant 2 broken: exit 1" "$RC" "1"
has "invariant 2 broken: the account, expected and found" "$REC" \
	"break: invariant 2: account member:M2: expected balance >= 0 (credits_posted - debits_posted), found -5; entries"
has "invariant 2 broken: stored sums differ from transfers" "$REC" \
	"break: invariant 2: account member:M2: expected posted debits 150, credits 500 (from transfers), found debits_posted 505, credits_posted 500"
has "invariant 2 broken: status line" "$REC" "  2 no negative member balance"

# ------------------------------------------------------------------ invariant 3
break_copy inv3 "UPDATE lots SET remaining = remaining - 1 WHERE id = $L_A1;"
is "invariant 3 broken: exit 1" "$RC" "1"
has "invariant 3 broken: the lot, expected and found" "$REC" \
	"break: invariant 3: lot $L_A1 of M1 (issued by entry $E_A1): expected remaining = lot moves 500, found remaining 499"
has "invariant 3 broken: the account, expected and found" "$REC" \
	"break: invariant 3: account member:M1: expected balance = lots remaining 699, found balance 700; entries"
is "invariant 3 broken: the others hold" "$(grep -cE '^  [12456] .* ok$' <<<"$REC")" "5"

# ------------------------------------------------------------------ invariant 4
break_copy inv4 "UPDATE accounts SET credits_posted = credits_posted + 7 WHERE name = 'member:M1';"
is "invariant 4 broken: exit 1" "$RC" "1"
has "invariant 4 broken: the totals, expected and found" "$REC" \
	"break: invariant 4: ledger totals: expected issued - issue reversals = 1720, found members 1057 + redeemed 600 + breakage 70 = 1727"
has "invariant 4 broken: status line" "$REC" "  4 issued - issue reversals = members + redeemed + breakage   BROKEN (1)"

# ------------------------------------------------------------------ invariant 5
break_copy inv5 "ALTER TABLE transfers DISABLE TRIGGER transfers_append_only;
	DROP TRIGGER lot_moves_no_truncate ON lot_moves;
	GRANT UPDATE, TRUNCATE ON entries TO pointsd;"
is "invariant 5 broken: exit 1" "$RC" "1"
has "invariant 5 broken: a disabled trigger" "$REC" \
	"break: invariant 5: trigger transfers_append_only on transfers: expected present and enabled, found disabled"
has "invariant 5 broken: a missing trigger" "$REC" \
	"break: invariant 5: trigger lot_moves_no_truncate on lot_moves: expected present and enabled, found missing"
has "invariant 5 broken: UPDATE granted" "$REC" "break: invariant 5: role pointsd on entries: expected no UPDATE, found has UPDATE"
has "invariant 5 broken: TRUNCATE granted" "$REC" "break: invariant 5: role pointsd on entries: expected no TRUNCATE, found has TRUNCATE"
is "invariant 5 broken: the ledger itself holds" "$(grep -cE '^  [1-46] .* ok$' <<<"$REC")" "5"
break_copy inv5b "ALTER TABLE entries DISABLE TRIGGER USER;"
has "invariant 5 broken: DISABLE TRIGGER USER on entries" "$REC" \
	"break: invariant 5: trigger entries_append_only on entries: expected present and enabled, found disabled"

# ------------------------------------------------------------------ invariant 6
# the journal tables declare no foreign keys: a row naming a missing row
break_copy inv6_lot "ALTER TABLE lot_moves DISABLE TRIGGER USER;
	UPDATE lot_moves SET lot_id = 999999 WHERE entry_id = $E_A1 AND seq = 1;
	ALTER TABLE lot_moves ENABLE TRIGGER USER;"
is "invariant 6 broken: lot move: exit 1" "$RC" "1"
has "invariant 6 broken: a lot move naming a missing lot" "$REC" \
	"break: invariant 6: lot_moves row (entry $E_A1, seq 1): expected lot 999999 in lots, found none; entries $E_A1"
has "invariant 6 broken: lot move: status line" "$REC" \
	"  6 every reference of the journal tables resolves             BROKEN (1)"
has "invariant 6 broken: lot move: one line on stderr" "$REC" \
	"pointsctl: reconcile: the ledger does not balance: invariants 3, 6 broken"

break_copy inv6_account "ALTER TABLE transfers DISABLE TRIGGER USER;
	UPDATE transfers SET credit_account = 999999 WHERE id = $T_A1;
	ALTER TABLE transfers ENABLE TRIGGER USER;"
is "invariant 6 broken: transfer: exit 1" "$RC" "1"
has "invariant 6 broken: a transfer naming a missing account" "$REC" \
	"break: invariant 6: transfers row (id $T_A1, entry $E_A1): expected credit account 999999 in accounts, found none; entries $E_A1"

break_copy inv6_entry "INSERT INTO messages (partner_id, msg_id, entry_id, jws, sha256, kid, type,
		member, points, balance, accepted_at, period)
	SELECT 'acme', 'ghost', 999999, 'jws.ghost', repeat('0', 64), 'k1', 'issue', 'M9', 5, 5,
		now(), (SELECT min(label) FROM periods);
	INSERT INTO receipts VALUES (999999, 'test-kid', 'receipt.ghost');"
is "invariant 6 broken: message: exit 1" "$RC" "1"
has "invariant 6 broken: a message whose entry does not exist" "$REC" \
	"break: invariant 6: messages row (acme ghost, entry 999999): expected entry 999999 in entries, found none; entries 999999"
has "invariant 6 broken: message: status line" "$REC" \
	"  6 every reference of the journal tables resolves             BROKEN (1)"
is "invariant 6 broken: message: the others hold" "$(grep -cE '^  [1-5] .* ok$' <<<"$REC")" "5"

break_copy inv6_kid "ALTER TABLE receipts DISABLE TRIGGER USER;
	UPDATE receipts SET kid = 'no-such-kid' WHERE entry_id = $E_A1;
	ALTER TABLE receipts ENABLE TRIGGER USER;"
is "invariant 6 broken: receipt key: exit 1" "$RC" "1"
has "invariant 6 broken: a receipt with an unknown kid" "$REC" \
	"break: invariant 6: receipts row (entry $E_A1): expected receipt key no-such-kid in receipt_keys, found none; entries $E_A1"
is "invariant 6 broken: receipt key: the others hold" "$(grep -cE '^  [1-5] .* ok$' <<<"$REC")" "5"
has "invariant 6 broken: receipt key: one line on stderr" "$REC" \
	"pointsctl: reconcile: the ledger does not balance: invariants 6 broken"

# and conversely: every message has its receipt, every message entry its message
break_copy inv6_receipt "ALTER TABLE receipts DISABLE TRIGGER USER;
	DELETE FROM receipts WHERE entry_id = $E_A1;
	ALTER TABLE receipts ENABLE TRIGGER USER;"
is "invariant 6 broken: no receipt: exit 1" "$RC" "1"
has "invariant 6 broken: a message without a receipt" "$REC" \
	"break: invariant 6: messages row (acme a1, entry $E_A1): expected receipt of entry $E_A1 in receipts, found none; entries $E_A1"
is "invariant 6 broken: no receipt: the others hold" "$(grep -cE '^  [1-5] .* ok$' <<<"$REC")" "5"

break_copy inv6_message "ALTER TABLE messages DISABLE TRIGGER USER;
	DELETE FROM messages WHERE entry_id = $E_A1;
	ALTER TABLE messages ENABLE TRIGGER USER;"
has "invariant 6 broken: a message entry without its message" "$REC" \
	"break: invariant 6: entries row (id $E_A1): expected message of entry $E_A1 in messages, found none; entries $E_A1"
has "invariant 6 broken: a receipt without its message" "$REC" \
	"break: invariant 6: receipts row (entry $E_A1): expected message of entry $E_A1 in messages, found none; entries $E_A1"

break_copy inv6_misc "ALTER TABLE entries DISABLE TRIGGER USER;
	UPDATE entries SET period = 'no-such-period', reverses_entry = 999998 WHERE id = $E_A4;
	ALTER TABLE entries ENABLE TRIGGER USER;
	UPDATE lots SET partner_id = 'nobody' WHERE id = $L_A1;"
has "invariant 6 broken: an entry in an unknown period" "$REC" \
	"break: invariant 6: entries row (id $E_A4): expected period no-such-period in periods, found none; entries $E_A4"
has "invariant 6 broken: a reversal of a missing entry" "$REC" \
	"break: invariant 6: entries row (id $E_A4): expected reversed entry 999998 in entries, found none; entries $E_A4"
has "invariant 6 broken: a lot of an unknown partner" "$REC" \
	"break: invariant 6: lots row (id $L_A1, entry $E_A1): expected partner nobody in partners, found none; entries $E_A1"
is "invariant 6 broken: --json counts its breaks" \
	"$(jq -c '.invariants[5] | [.invariant, .ok, .breaks_total, (.breaks[] | select(.subject | startswith("lots row")) | .expected)]' <<<"$RECJ")" \
	'[6,false,3,"partner nobody in partners"]'


exit $FAILED
