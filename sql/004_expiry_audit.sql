-- 004_expiry_audit.sql - lot expiry (breakage), the daily expiry job, and
-- the set-based checks of `pointsctl reconcile` (ledger.md §1, §2).
-- Expiry only appends (entries, transfers, lot_moves) and moves lots and
-- member accounts forward; reconcile only reads.

-- ---------------------------------------------------------------- expiry

-- Key of the expiry lock (ASCII "expire"): one expiry run at a time.
CREATE FUNCTION expiry_lock_key() RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 111542767331941::bigint $$;

-- One row per expiry run (also the runs that found nothing to expire).
CREATE TABLE expiry_runs (
	id      bigserial PRIMARY KEY,
	as_of   timestamptz NOT NULL,
	ran_at  timestamptz NOT NULL,
	entries bigint NOT NULL CHECK (entries >= 0),
	points  bigint NOT NULL CHECK (points >= 0),
	CHECK (as_of <= ran_at)
);
CREATE INDEX expiry_runs_as_of ON expiry_runs (as_of);

SELECT make_append_only('expiry_runs');

-- Turns the remaining points of every lot with expires_at <= as_of (NULL:
-- now; never later than now) into breakage: per member one entry (kind
-- expiry, stamped now, in the period of now), one transfer member ->
-- breakage, one lot move per lot (-remaining, seq in consumption order).
-- Holds the posting lock shared (a period cut-over waits for it) and locks
-- the member accounts in member order, as post_lock_group() does, so it
-- serializes with postings per member without deadlocks. A second run at
-- the same as_of finds nothing. Raises 22023 when as_of is in the future.
CREATE FUNCTION expire_lots(p_as_of timestamptz,
	OUT entries bigint, OUT points bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
	v_now      timestamptz;
	v_as_of    timestamptz;
	v_members  text[];
	v_breakage bigint;
	v_period   text;
BEGIN
	PERFORM pg_advisory_xact_lock(expiry_lock_key());
	PERFORM post_lock();
	v_now := clock_timestamp();
	v_as_of := coalesce(p_as_of, v_now);
	IF v_as_of > v_now THEN
		RAISE EXCEPTION 'as-of % is in the future',
			to_char(v_as_of AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
			USING ERRCODE = '22023';
	END IF;
	SELECT array_agg(a.member ORDER BY a.member) INTO v_members FROM (
		SELECT a.member FROM accounts a
		WHERE a.kind = 'member' AND a.member IN (SELECT l.member FROM lots l
			WHERE l.remaining > 0 AND l.expires_at <= v_as_of)
		ORDER BY a.member FOR UPDATE) a;
	entries := 0;
	points := 0;
	IF v_members IS NOT NULL THEN
		-- stamped after the locks: postings of these members are done
		v_now := clock_timestamp();
		v_period := period_for(v_now);
		SELECT a.id INTO v_breakage FROM accounts a WHERE a.kind = 'breakage';
		WITH x AS (
			SELECT l.id, l.member, l.account_id, l.remaining,
				row_number() OVER (PARTITION BY l.member ORDER BY l.expires_at, l.entry_id) AS seq
			FROM lots l
			WHERE l.member = ANY (v_members) AND l.remaining > 0 AND l.expires_at <= v_as_of
		), m AS (
			SELECT s.member, s.account_id, s.total, nextval('entries_id_seq') AS eid
			FROM (SELECT x.member, x.account_id, sum(x.remaining)::bigint AS total
				FROM x GROUP BY x.member, x.account_id ORDER BY x.member) s
		), e AS (
			INSERT INTO entries (id, kind, accepted_at, period, member, points)
			SELECT m.eid, 'expiry', v_now, v_period, m.member, m.total FROM m
		), t AS (
			INSERT INTO transfers (entry_id, debit_account, credit_account, points)
			SELECT m.eid, m.account_id, v_breakage, m.total FROM m ORDER BY m.eid
		), lm AS (
			INSERT INTO lot_moves (entry_id, seq, lot_id, points)
			SELECT m.eid, x.seq, x.id, -x.remaining FROM x JOIN m ON m.member = x.member
		), ul AS (
			UPDATE lots l SET remaining = 0 FROM x WHERE l.id = x.id
		), ua AS (
			UPDATE accounts a SET debits_posted = a.debits_posted + m.total
			FROM m WHERE a.id = m.account_id AND a.kind = 'member'
		)
		SELECT count(*), coalesce(sum(m.total), 0)::bigint INTO entries, points FROM m;
	END IF;
	INSERT INTO expiry_runs (as_of, ran_at, entries, points)
	VALUES (v_as_of, clock_timestamp(), entries, points);
END
$$;

-- The daily job of pointsd: runs expire_lots(now) unless another session
-- holds the expiry lock (then ran = false at once) or a run with as_of at
-- or after the start of today (program time zone) exists. Every expires_at
-- is the first instant of a local day, so such a run has swept everything
-- expired by now (except points a reversal restored since).
CREATE FUNCTION expire_daily(OUT ran boolean, OUT entries bigint, OUT points bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
	v_today timestamptz;
BEGIN
	ran := false;
	entries := 0;
	points := 0;
	IF NOT pg_try_advisory_xact_lock(expiry_lock_key()) THEN
		RETURN;
	END IF;
	SELECT ledger_day_start((clock_timestamp() AT TIME ZONE s.timezone)::date, s.timezone)
	INTO v_today FROM settings s;
	IF EXISTS (SELECT 1 FROM expiry_runs r WHERE r.as_of >= v_today) THEN
		RETURN;
	END IF;
	SELECT x.entries, x.points INTO entries, points FROM expire_lots(NULL) x;
	ran := true;
END
$$;

-- ---------------------------------------------------------------- reconcile

-- Trial balance per account kind, from transfers: debits, credits and
-- net = debits - credits (the sign hledger shows: issued positive,
-- members, redeemed and breakage negative). The total row nets to 0.
CREATE FUNCTION reconcile_trial_balance()
RETURNS TABLE (kind text, accounts bigint, debits numeric, credits numeric, net numeric)
LANGUAGE sql STABLE AS $$
	WITH mv AS (
		SELECT t.debit_account AS acct, t.points::numeric AS d, 0::numeric AS c FROM transfers t
		UNION ALL
		SELECT t.credit_account, 0, t.points FROM transfers t
	), k AS (
		SELECT a.kind, count(DISTINCT a.id) AS n, coalesce(sum(mv.d), 0) AS d,
			coalesce(sum(mv.c), 0) AS c
		FROM accounts a LEFT JOIN mv ON mv.acct = a.id GROUP BY a.kind
	)
	SELECT v.kind, coalesce(k.n, 0), coalesce(k.d, 0), coalesce(k.c, 0),
		coalesce(k.d, 0) - coalesce(k.c, 0)
	FROM (VALUES (1, 'issued'), (2, 'member'), (3, 'redeemed'), (4, 'breakage')) v(o, kind)
	LEFT JOIN k ON k.kind = v.kind
	UNION ALL
	SELECT 'total', (SELECT count(*) FROM accounts), coalesce(sum(k.d), 0),
		coalesce(sum(k.c), 0), coalesce(sum(k.d), 0) - coalesce(sum(k.c), 0) FROM k
$$;

-- Up to p_max ids of the latest entries that touched an account, as text.
CREATE FUNCTION reconcile_account_entries(p_account bigint, p_max int) RETURNS text
LANGUAGE sql STABLE AS $$
	SELECT coalesce(string_agg(x.e::text, ', ' ORDER BY x.e), '-') FROM (
		SELECT DISTINCT t.entry_id AS e FROM transfers t
		WHERE t.debit_account = p_account OR t.credit_account = p_account
		ORDER BY 1 DESC LIMIT p_max) x
$$;

-- Invariant 1: debits = credits over the ledger and per entry. Transfers
-- are single-sided pairs, so per entry it means: at least one transfer,
-- Σ transfers = entry points (messages and expiry), each transfer between
-- the accounts its entry's kind and type name, and Σ lot moves = +points
-- when the member is credited, -points when debited.
CREATE FUNCTION reconcile_inv1()
RETURNS TABLE (invariant int, subject text, expected text, found text, entries text)
LANGUAGE sql STABLE AS $$
	WITH tb AS (SELECT * FROM reconcile_trial_balance() WHERE kind = 'total'),
	ts AS (
		SELECT t.entry_id, count(*) AS n, sum(t.points) AS pts,
			bool_and(CASE
				WHEN e.kind = 'expiry' THEN da.name = 'member:' || e.member AND ca.kind = 'breakage'
				WHEN e.kind <> 'message' THEN true
				WHEN e.type = 'issue' THEN da.name = 'issued:' || e.partner_id AND ca.name = 'member:' || e.member
				WHEN e.type = 'redeem' THEN da.name = 'member:' || e.member AND ca.name = 'redeemed:' || e.partner_id
				WHEN o.type = 'issue' THEN da.name = 'member:' || e.member AND ca.name = 'issued:' || e.partner_id
				WHEN o.type = 'redeem' THEN da.name = 'redeemed:' || e.partner_id AND ca.name = 'member:' || e.member
				ELSE false END) AS accounts_ok,
			bool_or(ca.kind = 'member') AS member_credited
		FROM transfers t JOIN entries e ON e.id = t.entry_id
		LEFT JOIN entries o ON o.id = e.reverses_entry
		JOIN accounts da ON da.id = t.debit_account JOIN accounts ca ON ca.id = t.credit_account
		GROUP BY t.entry_id
	), lm AS (
		SELECT m.entry_id, sum(m.points) AS pts FROM lot_moves m GROUP BY m.entry_id
	)
	SELECT 1, 'ledger', 'debits = credits', 'debits ' || tb.debits || ', credits ' || tb.credits, '-'
	FROM tb WHERE tb.debits <> tb.credits
	UNION ALL
	SELECT 1, 'entry ' || e.id || ' (' || e.kind || coalesce(' ' || e.type, '') || ')', x.expected, x.found, e.id::text
	FROM entries e LEFT JOIN ts ON ts.entry_id = e.id LEFT JOIN lm ON lm.entry_id = e.id,
	LATERAL (VALUES
		(ts.n IS NULL, 'at least one transfer', 'none'),
		(ts.n IS NOT NULL AND e.kind <> 'adjustment' AND ts.pts <> e.points,
			'transfers totalling ' || e.points || ' points', ts.pts || ' points in ' || ts.n || ' transfers'),
		(ts.n IS NOT NULL AND NOT ts.accounts_ok,
			'transfers between the accounts of its kind', 'other accounts'),
		(ts.n IS NOT NULL AND e.kind <> 'adjustment'
			AND coalesce(lm.pts, 0) <> CASE WHEN ts.member_credited THEN e.points ELSE -e.points END,
			'lot moves totalling ' || CASE WHEN ts.member_credited THEN e.points ELSE -e.points END,
			coalesce(lm.pts, 0)::text)
	) AS x(bad, expected, found)
	WHERE x.bad
$$;

-- Invariant 2: no member balance is negative, and the stored sums
-- (accounts.debits_posted / credits_posted) equal the sums of transfers.
CREATE FUNCTION reconcile_inv2()
RETURNS TABLE (invariant int, subject text, expected text, found text, entries text)
LANGUAGE sql STABLE AS $$
	WITH s AS (
		SELECT a.id, a.name, a.debits_posted AS dp, a.credits_posted AS cp,
			coalesce((SELECT sum(t.points) FROM transfers t WHERE t.debit_account = a.id), 0) AS dt,
			coalesce((SELECT sum(t.points) FROM transfers t WHERE t.credit_account = a.id), 0) AS ct
		FROM accounts a WHERE a.kind = 'member'
	)
	SELECT 2, 'account ' || s.name, x.expected, x.found, reconcile_account_entries(s.id, 5)
	FROM s, LATERAL (VALUES
		(s.cp - s.dp < 0, 'balance >= 0 (credits_posted - debits_posted)', (s.cp - s.dp)::text),
		(s.ct - s.dt < 0, 'balance >= 0 (recomputed from transfers)', (s.ct - s.dt)::text),
		(s.dp <> s.dt OR s.cp <> s.ct,
			'posted debits ' || s.dt || ', credits ' || s.ct || ' (from transfers)',
			'debits_posted ' || s.dp || ', credits_posted ' || s.cp)
	) AS x(bad, expected, found)
	WHERE x.bad
$$;

-- Invariant 3: per member, account balance = Σ remaining of its lots; per
-- lot, remaining = Σ of all its lot moves (the issue's own +points move,
-- seq 1 of the lot's issuing entry, included) and that first move is
-- exactly +points.
CREATE FUNCTION reconcile_inv3()
RETURNS TABLE (invariant int, subject text, expected text, found text, entries text)
LANGUAGE sql STABLE AS $$
	SELECT 3, 'account ' || a.name, 'balance = lots remaining ' || coalesce(l.rem, 0),
		'balance ' || (a.credits_posted - a.debits_posted), reconcile_account_entries(a.id, 5)
	FROM accounts a LEFT JOIN (SELECT account_id, sum(remaining) AS rem FROM lots GROUP BY account_id) l
		ON l.account_id = a.id
	WHERE a.kind = 'member' AND a.credits_posted - a.debits_posted <> coalesce(l.rem, 0)
	UNION ALL
	SELECT 3, 'lot ' || l.id || ' of ' || l.member || ' (issued by entry ' || l.entry_id || ')',
		x.expected, x.found,
		coalesce((SELECT string_agg(m.entry_id::text, ', ' ORDER BY m.entry_id)
			FROM lot_moves m WHERE m.lot_id = l.id), '-')
	FROM lots l
	LEFT JOIN (SELECT m.lot_id, sum(m.points) AS s FROM lot_moves m GROUP BY m.lot_id) mv ON mv.lot_id = l.id
	LEFT JOIN lot_moves f ON f.entry_id = l.entry_id AND f.lot_id = l.id,
	LATERAL (VALUES
		(l.remaining <> coalesce(mv.s, 0), 'remaining = lot moves ' || coalesce(mv.s, 0),
			'remaining ' || l.remaining),
		(f.points IS DISTINCT FROM l.points, 'issuing move +' || l.points,
			coalesce('+' || f.points, 'none'))
	) AS x(bad, expected, found)
	WHERE x.bad
$$;

-- Invariant 4: Σ issued - Σ issue reversals (net debit of issued:*) =
-- Σ member balances (stored) + Σ redeemed net of reversals + breakage
-- (net credits of redeemed:* and breakage), from transfers by account kind.
CREATE FUNCTION reconcile_inv4()
RETURNS TABLE (invariant int, subject text, expected text, found text, entries text)
LANGUAGE sql STABLE AS $$
	WITH tb AS (SELECT kind, net FROM reconcile_trial_balance()),
	v AS (SELECT (SELECT net FROM tb WHERE kind = 'issued') AS issued,
		(SELECT coalesce(sum(a.credits_posted - a.debits_posted), 0) FROM accounts a
			WHERE a.kind = 'member') AS members,
		-(SELECT net FROM tb WHERE kind = 'redeemed') AS redeemed,
		-(SELECT net FROM tb WHERE kind = 'breakage') AS breakage)
	SELECT 4, 'ledger totals',
		'issued - issue reversals = ' || v.issued,
		'members ' || v.members || ' + redeemed ' || v.redeemed || ' + breakage '
			|| v.breakage || ' = ' || (v.members + v.redeemed + v.breakage), '-'
	FROM v WHERE v.issued <> v.members + v.redeemed + v.breakage
$$;

-- Invariant 5: append-only. Triggers present and enabled, and the server
-- role without UPDATE, DELETE or TRUNCATE on the journal tables.
CREATE FUNCTION reconcile_inv5()
RETURNS TABLE (invariant int, subject text, expected text, found text, entries text)
LANGUAGE sql STABLE AS $$
	WITH want(tbl, trg) AS (VALUES
		('entries', 'entries_append_only'), ('entries', 'entries_no_truncate'),
		('transfers', 'transfers_append_only'), ('transfers', 'transfers_no_truncate'),
		('lot_moves', 'lot_moves_append_only'), ('lot_moves', 'lot_moves_no_truncate'),
		('receipts', 'receipts_append_only'), ('receipts', 'receipts_no_truncate'),
		('messages', 'messages_guard'), ('messages', 'messages_no_truncate'),
		('period_seals', 'period_seals_append_only'), ('period_seals', 'period_seals_no_truncate'),
		('settlement_batches', 'settlement_batches_append_only'),
		('settlement_batches', 'settlement_batches_no_truncate'))
	SELECT 5, 'trigger ' || w.trg || ' on ' || w.tbl, 'present and enabled',
		CASE WHEN g.tgenabled IS NULL THEN 'missing' ELSE 'disabled' END, '-'
	FROM want w LEFT JOIN pg_trigger g
		ON g.tgrelid = to_regclass('public.' || w.tbl) AND g.tgname = w.trg
	WHERE g.tgenabled IS NULL OR g.tgenabled NOT IN ('O', 'A')
	UNION ALL
	SELECT 5, 'role pointsd on ' || t.tbl, 'no ' || p.priv, 'has ' || p.priv, '-'
	FROM (VALUES ('entries'), ('transfers'), ('lot_moves'), ('receipts'), ('period_seals'))
		AS t(tbl),
		(VALUES ('UPDATE'), ('DELETE'), ('TRUNCATE')) AS p(priv)
	WHERE EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pointsd')
	  AND has_table_privilege('pointsd', 'public.' || t.tbl, p.priv)
$$;

-- Invariant 6: every reference of the journal tables resolves. entries,
-- transfers, lots, lot_moves, messages and receipts declare no FOREIGN KEY
-- (sql/001: a key lookup per inserted row was ~30% of the database's work
-- per message); each "-> table" there is checked here instead, and
-- conversely every message entry has its messages row and every messages
-- row its receipt. One anti-join per reference (NOT EXISTS on the
-- target's primary or unique key; hash or merge, as the planner sees fit):
-- on 10^6 entries faster than one pass per table left-joining every target.
-- The references are data, a row each; the query of each is built from it.
CREATE FUNCTION reconcile_inv6()
RETURNS TABLE (invariant int, subject text, expected text, found text, entries text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
	r record;
BEGIN
	-- one row a reference: table.column -> target (key), the words before
	-- the value in "expected", which rows must have it; joined with how a
	-- row of each table is named and which entry it belongs to
	FOR r IN SELECT t.subject, t.entry, v.*
		FROM (VALUES
			('entries', 'period', 'periods', 'label', 'period ', 'true'),
			('entries', 'partner_id', 'partners', 'id', 'partner ', 'true'),
			('entries', 'reverses_entry', 'entries', 'id', 'reversed entry ', 'true'),
			('entries', 'id', 'messages', 'entry_id', 'message of entry ', $w$s.kind = 'message'$w$),
			('transfers', 'entry_id', 'entries', 'id', 'entry ', 'true'),
			('transfers', 'debit_account', 'accounts', 'id', 'debit account ', 'true'),
			('transfers', 'credit_account', 'accounts', 'id', 'credit account ', 'true'),
			('lots', 'account_id', 'accounts', 'id', 'account ', 'true'),
			('lots', 'partner_id', 'partners', 'id', 'partner ', 'true'),
			('lots', 'entry_id', 'entries', 'id', 'entry ', 'true'),
			('lot_moves', 'entry_id', 'entries', 'id', 'entry ', 'true'),
			('lot_moves', 'lot_id', 'lots', 'id', 'lot ', 'true'),
			('messages', 'partner_id', 'partners', 'id', 'partner ', 'true'),
			('messages', 'entry_id', 'entries', 'id', 'entry ', 'true'),
			('messages', 'entry_id', 'receipts', 'entry_id', 'receipt of entry ', 'true'),
			('receipts', 'entry_id', 'messages', 'entry_id', 'message of entry ', 'true'),
			('receipts', 'kid', 'receipt_keys', 'kid', 'receipt key ', 'true'))
			AS v(src, col, dst, key, what, only_rows)
		JOIN (VALUES
			('entries', $e$'entries row (id ' || s.id || ')'$e$, 's.id'),
			('transfers', $e$'transfers row (id ' || s.id || ', entry ' || s.entry_id || ')'$e$,
				's.entry_id'),
			('lots', $e$'lots row (id ' || s.id || ', entry ' || s.entry_id || ')'$e$, 's.entry_id'),
			('lot_moves', $e$'lot_moves row (entry ' || s.entry_id || ', seq ' || s.seq || ')'$e$,
				's.entry_id'),
			('messages', $e$'messages row (' || s.partner_id || ' ' || s.msg_id || ', entry '
				|| s.entry_id || ')'$e$, 's.entry_id'),
			('receipts', $e$'receipts row (entry ' || s.entry_id || ')'$e$, 's.entry_id'))
			AS t(src, subject, entry) ON t.src = v.src
	LOOP
		RETURN QUERY EXECUTE format('SELECT 6, %s, %L || s.%I || %L, %L, (%s)::text FROM %I s '
			'WHERE %s AND s.%I IS NOT NULL AND NOT EXISTS (SELECT 1 FROM %I d WHERE d.%I = s.%I)',
			r.subject, r.what, r.col, ' in ' || r.dst, 'none', r.entry, r.src,
			r.only_rows, r.col, r.dst, r.key, r.col);
	END LOOP;
END
$$;

-- Every break of every invariant, invariant by invariant.
CREATE FUNCTION reconcile_breaks()
RETURNS TABLE (invariant int, subject text, expected text, found text, entries text)
LANGUAGE sql STABLE AS $$
	SELECT * FROM reconcile_inv1()
	UNION ALL SELECT * FROM reconcile_inv2()
	UNION ALL SELECT * FROM reconcile_inv3()
	UNION ALL SELECT * FROM reconcile_inv4()
	UNION ALL SELECT * FROM reconcile_inv5()
	UNION ALL SELECT * FROM reconcile_inv6()
$$;

-- ---------------------------------------------------------------- rights

GRANT SELECT, INSERT ON expiry_runs TO pointsd;
GRANT USAGE ON SEQUENCE expiry_runs_id_seq TO pointsd;
GRANT EXECUTE ON FUNCTION expiry_lock_key(), expire_lots(timestamptz), expire_daily(),
	reconcile_trial_balance(), reconcile_account_entries(bigint, int),
	reconcile_inv1(), reconcile_inv2(), reconcile_inv3(), reconcile_inv4(),
	reconcile_inv5(), reconcile_inv6(), reconcile_breaks()
TO pointsd;
