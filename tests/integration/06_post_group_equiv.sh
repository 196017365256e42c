#!/bin/bash
# 06_post_group_equiv.sh - group commit changes nothing but speed: one random
# workload (issues, redeems, reversals, replays, conflicts, refusals, several
# messages of one member close together) posted one message per transaction
# and in groups of random size must give every message the same answer
# (outcome, code, balance) and leave the same ledger (member balances, lot
# remainders, transfers, prices and fees). This is what pins the set-based
# paths of post_group() (post_group_sets and post_sets in sql/005) to the
# one-by-one semantics of its loop. Run twice: over 40 members (a member
# has several messages in most groups: the loop) and over 1,500 (most
# members have one message per group: the sets, refusals included).
set -uo pipefail
. "$(dirname "$0")/stack.sh"

RUN=e$$x$RANDOM
SEED=${PTS_EQUIV_SEED:-0.$RANDOM}
N=${PTS_EQUIV_MESSAGES:-2500}
DBS=()
trap '[[ -n ${PTS_KEEP_DBS:-} ]] || for d in "${DBS[@]}"; do "$PTS_PGBIN/dropdb" -h "$PTS_PGHOST" -p "$PTS_PGPORT" -U postgres --if-exists "$d" 2>/dev/null; done' EXIT
echo "# seed $SEED, $N messages (PTS_EQUIV_SEED to repeat)"

mkdb() { # NAME MEMBERS
	local admin="host=$PTS_PGHOST port=$PTS_PGPORT dbname=$1 user=postgres"
	DBS+=("$1")
	"$PTS_PGBIN/createdb" -h "$PTS_PGHOST" -p "$PTS_PGPORT" -U postgres "$1" &&
		"$PTS_BIN/pointsctl" --db "$admin" init >/dev/null &&
		"$PTS_PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 "$admin" >/dev/null <<SQL
INSERT INTO partners (id, name, status) SELECT 'q' || i, 'partner ' || i, 'active' FROM generate_series(1, 4) i;
INSERT INTO rate_cards (partner_id, issue_price_micros, redeem_price_micros, clearing_fee_micros, effective_from)
SELECT 'q' || i, 10000 + i, 8000 + 10 * i, 1000 + 100 * i, now() - interval '1 day' FROM generate_series(1, 4) i;
-- the workload, the same in both databases: decided before anything is posted
SELECT setseed($SEED);
CREATE TABLE wl AS
SELECT g AS ord, 'q' || (1 + floor(random() * 4)::int) AS partner,
	'm' || g AS id, random() AS roll, 'M' || (1 + floor(random() * $2)::int) AS member,
	1 + floor(random() * 2000)::bigint AS points, floor(random() * g)::int AS back,
	random() AS r2
FROM generate_series(1, $N) g;
ALTER TABLE wl ADD type text, ADD rev text, ADD jws text, ADD pre text;
UPDATE wl SET type = CASE WHEN ord < 40 OR roll < 0.5 THEN 'issue' WHEN roll < 0.75 THEN 'redeem'
	ELSE 'reverse' END;
-- a reverse names an earlier message of its partner (its member, mostly)
UPDATE wl w SET rev = o.id, partner = o.partner,
	member = CASE WHEN w.r2 < 0.9 THEN o.member ELSE w.member END,
	points = least(w.points, o.points)
FROM wl o WHERE w.type = 'reverse' AND o.ord = greatest(1, w.ord - 1 - w.back % 50);
UPDATE wl SET type = 'issue' WHERE type = 'reverse' AND rev IS NULL;
UPDATE wl SET jws = 'jws-' || id;
-- replays and conflicts: a few messages resend an earlier id
UPDATE wl w SET id = o.id, jws = CASE WHEN w.r2 < 0.5 THEN o.jws ELSE 'other-' || w.ord END,
	partner = o.partner, type = o.type, member = o.member, points = o.points, rev = o.rev
FROM wl o WHERE w.roll BETWEEN 0.5 AND 0.53 AND o.ord = greatest(1, w.ord - 1 - w.back % 20) AND o.ord < w.ord;
-- refusals decided by the server (bad signature, stale) stay refusals
UPDATE wl SET pre = 'invalid_signature' WHERE r2 > 0.97;
CREATE TABLE answers (ord int PRIMARY KEY, outcome text, code text, balance bigint);
SQL
}

post_all() { # DB MAXGROUP: post the workload in groups of 1..MAXGROUP, record answers
	"$PTS_PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 \
		"host=$PTS_PGHOST port=$PTS_PGPORT dbname=$1 user=postgres" >/dev/null <<SQL
SELECT setseed($SEED / 2);
DO \$\$
DECLARE
	i int := 1; k int; r record;
BEGIN
	WHILE i <= $N LOOP
		k := least($N - i + 1, 1 + floor(random() * $2)::int);
		INSERT INTO answers
		SELECT i - 1 + g.ord, g.outcome, g.code, g.balance
		FROM (SELECT array_agg(partner ORDER BY ord) p, array_agg(id ORDER BY ord) d,
				array_agg(jws ORDER BY ord) j, array_agg(pre ORDER BY ord) e,
				array_agg(type ORDER BY ord) t, array_agg(member ORDER BY ord) m,
				array_agg(points ORDER BY ord) n, array_agg(rev ORDER BY ord) v
			FROM wl WHERE ord BETWEEN i AND i + k - 1) a,
		LATERAL post_group(a.p, a.d, a.j, array_fill(repeat('0', 64), ARRAY[k]),
			array_fill('k'::text, ARRAY[k]), a.e, a.t, a.m, a.n, a.v) g;
		i := i + k;
	END LOOP;
END
\$\$;
SQL
}

state() { # DB: answers and the ledger, in a form that does not depend on entry ids or times
	"$PTS_PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 "host=$PTS_PGHOST port=$PTS_PGPORT dbname=$1 user=postgres" <<'SQL'
SELECT 'answer', ord, outcome, coalesce(code, '-'), coalesce(balance::text, '-') FROM answers ORDER BY ord;
SELECT 'member', member, credits_posted, debits_posted FROM accounts WHERE kind = 'member' ORDER BY member;
SELECT 'lot', l.member, l.partner_id, m.msg_id, l.points, l.remaining
FROM lots l JOIN messages m ON m.entry_id = l.entry_id ORDER BY m.partner_id, m.msg_id;
SELECT 'reversed', partner_id, msg_id, reversed_points FROM messages ORDER BY partner_id, msg_id;
SELECT 'moves', m.partner_id, m.msg_id,
	string_agg(lm.points::text || '@' || lm2.msg_id || '/' || coalesce(lm.fee_micros::text, '-'), ',' ORDER BY lm.seq)
FROM messages m JOIN lot_moves lm ON lm.entry_id = m.entry_id
JOIN lots l ON l.id = lm.lot_id JOIN messages lm2 ON lm2.entry_id = l.entry_id
GROUP BY m.partner_id, m.msg_id ORDER BY 2, 3;
SELECT 'entry', e.partner_id, e.msg_id, e.type, e.points, coalesce(o.msg_id, '-'),
	coalesce(e.issue_price_micros::text, '-'), coalesce(e.redeem_price_micros::text, '-'),
	(SELECT string_agg(da.name || '>' || ca.name || ':' || t.points, ',' ORDER BY t.id)
	 FROM transfers t JOIN accounts da ON da.id = t.debit_account
	 JOIN accounts ca ON ca.id = t.credit_account WHERE t.entry_id = e.id)
FROM entries e LEFT JOIN entries o ON o.id = e.reverses_entry ORDER BY 2, 3;
SQL
}

equiv() { # MEMBERS
	local one="equiv_${RUN}_${1}_one" groups="equiv_${RUN}_${1}_groups" diffs
	echo "# $1 members"
	mkdb "$one" "$1" && mkdb "$groups" "$1" || { t_not_ok "$1 members: two databases with one workload"; return; }
	post_all "$one" 1 || t_not_ok "$1 members: posted one message per transaction"
	post_all "$groups" "${PTS_EQUIV_GROUP:-64}" || t_not_ok "$1 members: posted in groups of up to ${PTS_EQUIV_GROUP:-64}"
	state "$one" >"$PTS_STACK/equiv_one.txt"
	state "$groups" >"$PTS_STACK/equiv_groups.txt"
	t_is "$1 members: every message was answered in both" \
		"$(grep -c '^answer' "$PTS_STACK/equiv_one.txt") $(grep -c '^answer' "$PTS_STACK/equiv_groups.txt")" "$N $N"
	t_check "$1 members: the workload has posted issues, redeems and reversals, replays, conflicts and refusals" bash -c "
		grep -q '|posted|-|' '$PTS_STACK/equiv_one.txt' && grep -q '|replayed|' '$PTS_STACK/equiv_one.txt' &&
		grep -q 'duplicate_conflict' '$PTS_STACK/equiv_one.txt' && grep -q 'insufficient_points' '$PTS_STACK/equiv_one.txt' &&
		grep -q 'invalid_signature' '$PTS_STACK/equiv_one.txt' && grep -q '^moves.*,' '$PTS_STACK/equiv_one.txt' &&
		grep -q '^entry|.*|redeem|' '$PTS_STACK/equiv_one.txt'"
	diffs=$(diff "$PTS_STACK/equiv_one.txt" "$PTS_STACK/equiv_groups.txt" | head -n 12)
	t_is "$1 members: groups give every message the same answer and leave the same ledger" "$diffs" ""
}

equiv 40
equiv 1500
t_done
