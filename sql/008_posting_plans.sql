-- 008_posting_plans.sql - the posting path's plans no longer depend on the
-- tables' statistics. Applied after 007 by `pointsctl init`.
--
-- post_group() already ran with enable_seqscan and enable_bitmapscan off,
-- and pointsd re-plans every 10 s (DISCARD PLANS). That still left the
-- planner free to join a group's messages to a table with a merge or hash
-- join over a full index scan of the table, which it did when the table's
-- statistics said it was nearly empty: on a new ledger, or one grown
-- since its last ANALYZE. Seen with auto_explain on a fresh stack: the
-- judging query of post_sets() merge-joined the group's members with every
-- member account (2,214 rows read and a lots sum for each, for 22
-- messages), and the single-message benchmark ran at 1,050-1,550
-- messages/s instead of 2,700 until autovacuum had analyzed the tables.
-- With merge and hash joins off, every table is read through its index, a
-- probe per message of the group, whatever the statistics: the cost of a
-- group depends on its size, not on the ledger's. (The few joins of the
-- group's own arrays with each other become nested loops over at most
-- commit_max_messages rows; bench/sql_post_group.sh measures them.)
ALTER FUNCTION post_group(text[], text[], text[], text[], text[], text[], text[], text[],
	bigint[], text[]) SET enable_hashjoin = off;
ALTER FUNCTION post_group(text[], text[], text[], text[], text[], text[], text[], text[],
	bigint[], text[]) SET enable_mergejoin = off;
-- Nor may it read a small-looking table once and keep it (a Materialize
-- node, then a filter per message): seen right after the above, with the
-- member accounts again.
ALTER FUNCTION post_group(text[], text[], text[], text[], text[], text[], text[], text[],
	bigint[], text[]) SET enable_material = off;

-- The joins that are the group's arrays alone stay fast: post_group_sets()
-- gets hash joins back (it reads the two tables only through LATERAL
-- probes), and post_sets() checks that the lot moves cover each redeem and
-- reverse without a join. (bench/sql_post_group.sh: a first version with
-- nested loops everywhere cost 30% more in groups of 1,000.) Both as in
-- sql/005 otherwise.

CREATE OR REPLACE FUNCTION post_group_sets(p_partner text[], p_id text[], p_jws text[], p_sha256 text[],
	p_kid text[], p_pre_error text[], p_type text[], p_member text[], p_points bigint[],
	p_reverses text[], OUT issues int[], OUT redeems int[], OUT reverses int[])
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
-- the group's arrays join each other by hash; the two tables are probed
-- per message (LATERAL ... LIMIT 1 is always a parameterized index scan)
SET enable_hashjoin = on
SET enable_mergejoin = on
SET enable_material = on
AS $$
BEGIN
	WITH u AS (
		SELECT x.*, row_number() OVER (PARTITION BY x.partner, x.id ORDER BY x.o) AS first
		FROM unnest(p_partner, p_id, p_jws, p_sha256, p_kid, p_pre_error, p_type, p_member,
			p_points, p_reverses) WITH ORDINALITY
			AS x(partner, id, jws, sha, kid, pre, type, member, points, rev, o)),
	r AS (SELECT partner, rev, count(*) AS n FROM u WHERE rev IS NOT NULL GROUP BY 1, 2),
	ids AS (SELECT DISTINCT partner, id FROM u WHERE id IS NOT NULL),
	c AS (
		SELECT u.o, u.member, u.pre, u.type,
			(u.pre IS NULL AND u.first = 1
			 AND u.partner IS NOT NULL AND u.id IS NOT NULL AND u.member IS NOT NULL
			 AND u.jws IS NOT NULL AND u.sha IS NOT NULL AND u.kid IS NOT NULL
			 AND u.points BETWEEN 1 AND 1000000000
			 AND r.partner IS NULL AND m.msg_id IS NULL
			 AND ((u.type IN ('issue', 'redeem') AND u.rev IS NULL)
			   OR (u.type = 'reverse' AND u.rev IS NOT NULL AND rr.n = 1
			       AND NOT EXISTS (SELECT 1 FROM ids WHERE ids.partner = u.partner AND ids.id = u.rev)
			       AND om.type IS DISTINCT FROM 'redeem'))) AS ok
		FROM u
		LEFT JOIN r ON r.partner = u.partner AND r.rev = u.id
		LEFT JOIN r rr ON rr.partner = u.partner AND rr.rev = u.rev
		LEFT JOIN LATERAL (SELECT m.msg_id FROM messages m
			WHERE m.partner_id = u.partner AND m.msg_id = u.id LIMIT 1) m ON true
		LEFT JOIN LATERAL (SELECT om.type FROM messages om
			WHERE om.partner_id = u.partner AND om.msg_id = u.rev LIMIT 1) om ON true),
	w AS (SELECT c.o, c.ok, c.type,
			bool_and((c.ok AND c.type = 'issue') OR c.pre IS NOT NULL)
				OVER (PARTITION BY c.member) AS all_issues,
			count(*) FILTER (WHERE c.pre IS NULL) OVER (PARTITION BY c.member) AS live
		FROM c)
	SELECT array_agg(w.o::int ORDER BY w.o) FILTER (WHERE w.ok AND w.type = 'issue' AND w.all_issues),
		array_agg(w.o::int ORDER BY w.o) FILTER (WHERE w.ok AND w.type = 'redeem' AND w.live = 1),
		array_agg(w.o::int ORDER BY w.o) FILTER (WHERE w.ok AND w.type = 'reverse' AND w.live = 1)
	INTO issues, redeems, reverses FROM w;
END
$$;

CREATE OR REPLACE FUNCTION post_sets(p_issues int[], p_redeems int[], p_reverses int[],
	p_at timestamptz, p_period text, p_partner text[], p_id text[], p_jws text[],
	p_sha256 text[], p_kid text[], p_member text[], p_points bigint[], p_rev text[])
RETURNS TABLE (s_ord int, s_code text, s_entry bigint, s_balance bigint, s_accepted_at text,
	s_period text)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
	v_set   settings%ROWTYPE;
	v_ord   int[];
	v_kind  text[];
	v_code  text[];
	v_acct  bigint[];
	v_bal   bigint[];
	v_orig  bigint[];
	v_lot   bigint[];
	v_entry bigint[];
	v_me    bigint[];
	v_ms    int[];
	v_ml    bigint[];
	v_mt    bigint[];
	v_mp    text[];
	v_n     int;
	v_rows  int;
BEGIN
	SELECT array_agg(j.o ORDER BY j.o), array_agg(j.k ORDER BY j.o), array_agg(j.code ORDER BY j.o),
		array_agg(j.acct ORDER BY j.o), array_agg(j.bal ORDER BY j.o),
		array_agg(j.orig ORDER BY j.o), array_agg(j.lot ORDER BY j.o)
	INTO v_ord, v_kind, v_code, v_acct, v_bal, v_orig, v_lot
	FROM (SELECT s.o, s.k, a.id AS acct, om.entry_id AS orig, l.id AS lot,
			CASE s.k WHEN 'issue' THEN NULL
			WHEN 'redeem' THEN CASE WHEN a.credits_posted > 0 IS NOT TRUE THEN 'unknown_member'
				WHEN a.avail < p_points[s.o] THEN 'insufficient_points' END
			ELSE CASE WHEN om.msg_id IS NULL THEN 'unknown_original'
				WHEN om.type = 'reverse' OR om.member <> p_member[s.o] THEN 'invalid_message'
				WHEN a.credits_posted > 0 IS NOT TRUE THEN 'unknown_member'
				WHEN p_points[s.o] > om.points - om.reversed_points THEN 'over_reversal'
				WHEN l.remaining IS NULL OR l.remaining < p_points[s.o] OR l.expires_at <= p_at
					THEN 'insufficient_points' END END AS code,
			CASE s.k WHEN 'issue'
				THEN a.avail + sum(p_points[s.o]) OVER (PARTITION BY p_member[s.o] ORDER BY s.o)
				ELSE a.avail - p_points[s.o] END AS bal
		FROM (SELECT o, 'issue' AS k FROM unnest(p_issues) o
			UNION ALL SELECT o, 'redeem' FROM unnest(p_redeems) o
			UNION ALL SELECT o, 'reverse' FROM unnest(p_reverses) o) s
		-- the member's account and available balance (ledger_available_points)
		LEFT JOIN LATERAL (SELECT m.id, m.credits_posted,
				m.credits_posted - m.debits_posted - coalesce((SELECT sum(x.remaining) FROM lots x
					WHERE x.member = m.member AND x.remaining > 0 AND x.expires_at <= p_at), 0)
					AS avail
			FROM accounts m WHERE m.kind = 'member' AND m.member = p_member[s.o] OFFSET 0) a ON true
		LEFT JOIN messages om ON s.k = 'reverse' AND om.partner_id = p_partner[s.o]
			AND om.msg_id = p_rev[s.o]
		LEFT JOIN lots l ON l.entry_id = om.entry_id) j;
	RETURN QUERY SELECT x.o, x.c, NULL::bigint, NULL::bigint, NULL::text, NULL::text
	FROM unnest(v_ord, v_code) AS x(o, c) WHERE x.c IS NOT NULL;
	SELECT array_agg(x.o ORDER BY x.o), array_agg(x.k ORDER BY x.o), array_agg(x.a ORDER BY x.o),
		array_agg(x.b ORDER BY x.o), array_agg(x.r ORDER BY x.o), array_agg(x.l ORDER BY x.o)
	INTO v_ord, v_kind, v_acct, v_bal, v_orig, v_lot
	FROM unnest(v_ord, v_kind, v_code, v_acct, v_bal, v_orig, v_lot) AS x(o, k, c, a, b, r, l)
	WHERE x.c IS NULL;
	v_n := coalesce(array_length(v_ord, 1), 0);
	IF v_n = 0 THEN
		RETURN;
	END IF;
	IF array_position(v_acct, NULL) IS NOT NULL THEN
		RAISE EXCEPTION 'assert: a message of the sets has no member account';
	END IF;
	PERFORM ledger_partner_account(d.kind, d.p)
	FROM (SELECT DISTINCT CASE WHEN x.k = 'redeem' THEN 'redeemed' ELSE 'issued' END AS kind,
			p_partner[x.o] AS p
		FROM unnest(v_ord, v_kind) AS x(o, k) ORDER BY 1, 2) d;
	SELECT array_agg(nextval('entries_id_seq') ORDER BY s.k) INTO v_entry
	FROM unnest(v_ord) WITH ORDINALITY AS s(o, k);
	INSERT INTO messages (partner_id, msg_id, entry_id, jws, sha256, kid, type, member,
		points, reverses, balance, accepted_at, period)
	SELECT p_partner[x.o], p_id[x.o], x.e, p_jws[x.o], p_sha256[x.o], p_kid[x.o], x.k,
		p_member[x.o], p_points[x.o], p_rev[x.o], x.b, p_at, p_period
	FROM unnest(v_ord, v_entry, v_kind, v_bal) AS x(o, e, k, b)
	ON CONFLICT (partner_id, msg_id) DO NOTHING;
	GET DIAGNOSTICS v_rows = ROW_COUNT;
	IF v_rows <> v_n THEN
		RAISE EXCEPTION 'post_sets: an id of the group was posted concurrently'
			USING ERRCODE = 'serialization_failure';
	END IF;
	-- prices (settlement.md §1): the card in force for an issue or redeem,
	-- the original's for a reverse
	INSERT INTO entries (id, kind, accepted_at, period, partner_id, msg_id, type, member,
		points, reverses_entry, issue_price_micros, redeem_price_micros)
	SELECT x.e, 'message', p_at, p_period, p_partner[x.o], p_id[x.o], x.k, p_member[x.o],
		p_points[x.o], x.r,
		CASE x.k WHEN 'issue' THEN c.issue_price_micros WHEN 'reverse' THEN o.issue_price_micros END,
		CASE x.k WHEN 'redeem' THEN c.redeem_price_micros WHEN 'reverse' THEN o.redeem_price_micros END
	FROM unnest(v_ord, v_entry, v_kind, v_orig) AS x(o, e, k, r)
	LEFT JOIN entries o ON o.id = x.r
	LEFT JOIN LATERAL (SELECT c.issue_price_micros, c.redeem_price_micros FROM rate_cards c
		WHERE c.partner_id = p_partner[x.o] AND c.effective_from <= p_at
		ORDER BY c.effective_from DESC LIMIT 1) c ON x.k <> 'reverse';
	INSERT INTO transfers (entry_id, debit_account, credit_account, points)
	SELECT x.e, CASE WHEN x.k = 'issue' THEN pa.id ELSE x.a END,
		CASE WHEN x.k = 'issue' THEN x.a ELSE pa.id END, p_points[x.o]
	FROM unnest(v_ord, v_entry, v_kind, v_acct) AS x(o, e, k, a)
	JOIN accounts pa ON pa.name = CASE WHEN x.k = 'redeem' THEN 'redeemed:' ELSE 'issued:' END
		|| p_partner[x.o]
	ORDER BY x.e;
	GET DIAGNOSTICS v_rows = ROW_COUNT;
	IF v_rows <> v_n THEN
		RAISE EXCEPTION 'assert: % transfers for % messages of the sets', v_rows, v_n;
	END IF;
	UPDATE accounts a SET credits_posted = a.credits_posted + s.cr,
		debits_posted = a.debits_posted + s.dr
	FROM (SELECT x.a, sum(CASE WHEN x.k = 'issue' THEN p_points[x.o] ELSE 0 END) AS cr,
			sum(CASE WHEN x.k = 'issue' THEN 0 ELSE p_points[x.o] END) AS dr
		FROM unnest(v_ord, v_kind, v_acct) AS x(o, k, a) GROUP BY x.a) s
	WHERE a.id = s.a;
	IF p_issues IS NOT NULL THEN
		SELECT * INTO v_set FROM settings;
		WITH l AS (
			INSERT INTO lots (account_id, member, partner_id, entry_id, points, remaining,
				issued_at, expires_at)
			SELECT x.a, p_member[x.o], p_partner[x.o], x.e, p_points[x.o], p_points[x.o], p_at,
				ledger_lot_expiry(p_at, v_set.validity_rule, v_set.validity_n, v_set.timezone)
			FROM unnest(v_ord, v_entry, v_kind, v_acct) AS x(o, e, k, a)
			WHERE x.k = 'issue'
			ORDER BY x.e
			RETURNING lots.id, lots.entry_id, lots.points)
		INSERT INTO lot_moves (entry_id, seq, lot_id, points)
		SELECT l.entry_id, 1, l.id, l.points FROM l;
	END IF;
	IF p_redeems IS NOT NULL OR p_reverses IS NOT NULL THEN
		-- the lots each redeem consumes: walk the member's open lots in
		-- (expires_at, entry_id) order while the points taken so far fall short;
		-- a reverse takes its points out of its issue's lot
		WITH RECURSIVE walk AS (
			SELECT x.e, x.o, 1 AS seq, f.id, f.partner_id, f.expires_at, f.entry_id,
				least(f.remaining, p_points[x.o]) AS take, least(f.remaining, p_points[x.o]) AS cum
			FROM unnest(v_ord, v_entry, v_kind) AS x(o, e, k)
			CROSS JOIN LATERAL (SELECT l.id, l.partner_id, l.remaining, l.expires_at, l.entry_id
				FROM lots l WHERE l.member = p_member[x.o] AND l.remaining > 0 AND l.expires_at > p_at
				ORDER BY l.expires_at, l.entry_id LIMIT 1) f
			WHERE x.k = 'redeem'
			UNION ALL
			SELECT w.e, w.o, w.seq + 1, n.id, n.partner_id, n.expires_at, n.entry_id,
				least(n.remaining, p_points[w.o] - w.cum), w.cum + least(n.remaining, p_points[w.o] - w.cum)
			FROM walk w
			CROSS JOIN LATERAL (SELECT l.id, l.partner_id, l.remaining, l.expires_at, l.entry_id
				FROM lots l WHERE l.member = p_member[w.o] AND l.remaining > 0 AND l.expires_at > p_at
				  AND (l.expires_at, l.entry_id) > (w.expires_at, w.entry_id)
				ORDER BY l.expires_at, l.entry_id LIMIT 1) n
			WHERE w.cum < p_points[w.o]),
		mv AS (
			SELECT walk.e, walk.seq, walk.id, walk.take, walk.partner_id FROM walk
			UNION ALL
			SELECT x.e, 1, x.l, p_points[x.o], NULL FROM unnest(v_ord, v_entry, v_kind, v_lot)
				AS x(o, e, k, l) WHERE x.k = 'reverse')
		SELECT array_agg(mv.e ORDER BY mv.e, mv.seq), array_agg(mv.seq ORDER BY mv.e, mv.seq),
			array_agg(mv.id ORDER BY mv.e, mv.seq), array_agg(mv.take ORDER BY mv.e, mv.seq),
			array_agg(mv.partner_id ORDER BY mv.e, mv.seq)
		INTO v_me, v_ms, v_ml, v_mt, v_mp FROM mv;
		-- each redeem and reverse covered exactly (the judging guarantees it)
		-- (+points per redeem or reverse, -points per lot move, summed per
		-- entry: every sum is 0; no join, so no nested loop over the moves)
		IF EXISTS (SELECT 1 FROM (
				SELECT x.e, p_points[x.o] AS p FROM unnest(v_ord, v_entry, v_kind) AS x(o, e, k)
				WHERE x.k <> 'issue'
				UNION ALL SELECT m.e, -m.t FROM unnest(v_me, v_mt) AS m(e, t)) d
			GROUP BY d.e HAVING sum(d.p) <> 0) THEN
			RAISE EXCEPTION 'assert: a redeem or reverse of the sets is not covered by its lots';
		END IF;
		-- (from arrays: a join with the walk's CTE would be planned as a scan of all lots)
		UPDATE lots SET remaining = lots.remaining - x.t
		FROM unnest(v_ml, v_mt) AS x(l, t) WHERE lots.id = x.l;
		GET DIAGNOSTICS v_rows = ROW_COUNT;
		IF v_rows <> coalesce(array_length(v_ml, 1), 0) THEN
			RAISE EXCEPTION 'assert: % lots changed for % lot moves', v_rows, array_length(v_ml, 1);
		END IF;
		-- the clearing fee of the lot's issuer in force at the redemption
		INSERT INTO lot_moves (entry_id, seq, lot_id, points, fee_micros)
		SELECT x.e, x.s, x.l, -x.t,
			CASE WHEN x.p IS NOT NULL THEN (SELECT c.clearing_fee_micros FROM rate_cards c
				WHERE c.partner_id = x.p AND c.effective_from <= p_at
				ORDER BY c.effective_from DESC LIMIT 1) END
		FROM unnest(v_me, v_ms, v_ml, v_mt, v_mp) AS x(e, s, l, t, p);
		IF p_reverses IS NOT NULL THEN
			UPDATE messages m SET reversed_points = m.reversed_points + p_points[x.o]
			FROM unnest(v_ord, v_kind, v_orig) AS x(o, k, r) WHERE x.k = 'reverse' AND m.entry_id = x.r;
		END IF;
	END IF;
	RETURN QUERY SELECT x.o, NULL::text, x.e, x.b,
		to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), p_period
	FROM unnest(v_ord, v_entry, v_bal) AS x(o, e, b);
END
$$;

ALTER FUNCTION post_sets(int[], int[], int[], timestamptz, text, text[], text[], text[], text[],
	text[], text[], bigint[], text[]) SET enable_hashjoin = off;
ALTER FUNCTION post_sets(int[], int[], int[], timestamptz, text, text[], text[], text[], text[],
	text[], text[], bigint[], text[]) SET enable_mergejoin = off;
ALTER FUNCTION post_sets(int[], int[], int[], timestamptz, text, text[], text[], text[], text[],
	text[], text[], bigint[], text[]) SET enable_material = off;

-- post_lock_group() (sql/002) inserted the member account of every issuing
-- member of the group (ON CONFLICT DO NOTHING: an index probe and a
-- speculative insertion each, nearly always for nothing) before locking
-- them all. It now locks the existing accounts first, in member order, and
-- inserts only the ones that were missing; a row inserted meanwhile by
-- another instance (the insertion skips it) is then locked like the others.
-- Same locks, same order for the existing accounts, so concurrent groups
-- and the expiry job still serialize per member; a new member's row is
-- locked by its insert. Its lookups are LATERAL probes in key order: the
-- same rows locked in the same order, through the index whatever the
-- statistics say.
CREATE OR REPLACE FUNCTION post_lock_group(p_partner text[], p_type text[], p_member text[],
	p_reverses text[], p_pre_error text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	v_locked text[];
	v_new    text[];
BEGIN
	SELECT array_agg(l.member) INTO v_locked
	FROM (SELECT DISTINCT u.m FROM unnest(p_member, p_pre_error) AS u(m, e)
			WHERE u.e IS NULL AND u.m IS NOT NULL ORDER BY u.m) u
	CROSS JOIN LATERAL (SELECT a.member FROM accounts a
		WHERE a.kind = 'member' AND a.member = u.m FOR UPDATE) l;
	IF 'issue' = ANY (p_type) THEN
		SELECT array_agg(s.m ORDER BY s.m) INTO v_new
		FROM (SELECT DISTINCT u.m FROM unnest(p_member, p_type, p_pre_error) AS u(m, t, e)
			WHERE u.t = 'issue' AND u.e IS NULL AND u.m IS NOT NULL
			  AND u.m NOT IN (SELECT unnest(v_locked))) s;
		IF v_new IS NOT NULL THEN
			WITH i AS (
				INSERT INTO accounts (name, kind, member)
				SELECT 'member:' || m, 'member', m FROM unnest(v_new) AS m ORDER BY m
				ON CONFLICT DO NOTHING RETURNING member)
			SELECT array_agg(m) INTO v_new FROM unnest(v_new) AS m
			WHERE m NOT IN (SELECT i.member FROM i);
			IF v_new IS NOT NULL THEN
				PERFORM 1 FROM (SELECT m FROM unnest(v_new) AS m ORDER BY m) u
				CROSS JOIN LATERAL (SELECT 1 FROM accounts a
					WHERE a.kind = 'member' AND a.member = u.m FOR UPDATE) l;
			END IF;
		END IF;
	END IF;
	IF 'reverse' = ANY (p_type) THEN
		PERFORM 1 FROM (SELECT DISTINCT u.p, u.r
				FROM unnest(p_partner, p_reverses, p_type, p_pre_error) AS u(p, r, t, e)
				WHERE u.t = 'reverse' AND u.e IS NULL AND u.r IS NOT NULL ORDER BY u.p, u.r) u
		CROSS JOIN LATERAL (SELECT 1 FROM messages m
			WHERE m.partner_id = u.p AND m.msg_id = u.r FOR UPDATE) l;
	END IF;
END
$$;
