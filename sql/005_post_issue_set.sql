-- 005_post_issue_set.sql - the issues of a group posted set-based.
-- The benchmark profile of 002's post_group (docs/performance.md) showed the
-- single writer connection spending ~0.8 ms per message in one small
-- statement after another. Issues, most of the traffic, need no lot choice
-- and never fail a ledger rule, so a group's issues are written with one
-- statement per table instead of about ten per message. What is judged
-- in order (redeems, reversals, replays, conflicts, refusals) still goes
-- through 002's loop, unchanged.
--
-- An issue joins the set only when posting it first cannot change any other
-- message's answer: valid and not refused by the server (pre_error NULL),
-- the first occurrence of its (partner, id) in the group, not stored, not
-- named by a reverse of the group, and its member has no redeem or reverse
-- in the group (so each member's messages keep their arrival order, and
-- balances in replies are those of posting one by one). The set shares one
-- accepted_at, taken after the locks; entry ids follow arrival order.

CREATE FUNCTION post_issue_set(p_partner text[], p_id text[], p_jws text[], p_sha256 text[],
	p_kid text[], p_pre_error text[], p_type text[], p_member text[], p_points bigint[],
	p_reverses text[])
RETURNS TABLE (s_ord int, s_entry bigint, s_balance bigint, s_accepted_at text, s_period text)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
	v_set   settings%ROWTYPE;
	v_at    timestamptz;
	v_pl    text;
	v_exp   timestamptz;
	v_ord   int[];
	v_entry bigint[];
	v_bal   bigint[];
	v_n     int;
	v_rows  int;
BEGIN
	WITH u AS (
		SELECT x.*, row_number() OVER (PARTITION BY x.partner, x.id ORDER BY x.o) AS first
		FROM unnest(p_partner, p_id, p_jws, p_sha256, p_kid, p_pre_error, p_type, p_member,
			p_points, p_reverses) WITH ORDINALITY
			AS x(partner, id, jws, sha, kid, pre, type, member, points, rev, o)),
	r AS (SELECT DISTINCT partner, rev FROM u WHERE rev IS NOT NULL),
	c AS (
		SELECT u.o, u.member, u.pre,
			(u.pre IS NULL AND u.type = 'issue' AND u.first = 1
			 AND u.partner IS NOT NULL AND u.id IS NOT NULL AND u.member IS NOT NULL
			 AND u.jws IS NOT NULL AND u.sha IS NOT NULL AND u.kid IS NOT NULL AND u.rev IS NULL
			 AND u.points BETWEEN 1 AND 1000000000
			 AND r.partner IS NULL AND m.msg_id IS NULL) AS ok
		FROM u
		LEFT JOIN r ON r.partner = u.partner AND r.rev = u.id
		LEFT JOIN messages m ON m.partner_id = u.partner AND m.msg_id = u.id),
	-- a member joins the set with all its messages or not at all, so that
	-- its messages keep their order (one left to the loop would come after)
	w AS (SELECT c.o, c.ok, bool_and(c.ok OR c.pre IS NOT NULL)
			OVER (PARTITION BY c.member) AS whole
		FROM c)
	SELECT array_agg(w.o::int ORDER BY w.o) INTO v_ord FROM w WHERE w.ok AND w.whole;
	v_n := coalesce(array_length(v_ord, 1), 0);
	IF v_n = 0 THEN
		RETURN;
	END IF;
	SELECT * INTO v_set FROM settings;
	v_at := clock_timestamp();
	v_pl := (SELECT pr.label FROM period_row_for(v_at) pr);
	v_exp := ledger_lot_expiry(v_at, v_set.validity_rule, v_set.validity_n, v_set.timezone);
	PERFORM ledger_partner_account('issued', d.p)
	FROM (SELECT DISTINCT p_partner[o] AS p FROM unnest(v_ord) o ORDER BY 1) d;
	-- entry ids in arrival order (the scan of v_ord); balances as if the
	-- issues were posted one by one
	SELECT array_agg(nextval('entries_id_seq') ORDER BY s.k) INTO v_entry
	FROM unnest(v_ord) WITH ORDINALITY AS s(o, k);
	SELECT array_agg(x.b ORDER BY x.o) INTO v_bal
	FROM (SELECT s.o, ledger_available_points(a.id, p_member[s.o], v_at)
			+ sum(p_points[s.o]) OVER (PARTITION BY p_member[s.o] ORDER BY s.o) AS b
		FROM unnest(v_ord) AS s(o)
		JOIN accounts a ON a.kind = 'member' AND a.member = p_member[s.o]) x;
	IF coalesce(array_length(v_bal, 1), 0) <> v_n THEN
		RAISE EXCEPTION 'assert: % issues of the set have no member account', v_n;
	END IF;
	INSERT INTO messages (partner_id, msg_id, entry_id, jws, sha256, kid, type, member,
		points, reverses, balance, accepted_at, period)
	SELECT p_partner[x.o], p_id[x.o], x.e, p_jws[x.o], p_sha256[x.o], p_kid[x.o], 'issue',
		p_member[x.o], p_points[x.o], NULL, x.b, v_at, v_pl
	FROM unnest(v_ord, v_entry, v_bal) AS x(o, e, b)
	ON CONFLICT (partner_id, msg_id) DO NOTHING;
	GET DIAGNOSTICS v_rows = ROW_COUNT;
	IF v_rows <> v_n THEN
		-- another instance posted one of these ids meanwhile: the whole group
		-- is tried again, and that id is then answered from the stored row
		RAISE EXCEPTION 'post_issue_set: an id of the group was posted concurrently'
			USING ERRCODE = 'serialization_failure';
	END IF;
	INSERT INTO entries (id, kind, accepted_at, period, partner_id, msg_id, type, member,
		points, issue_price_micros)
	SELECT x.e, 'message', v_at, v_pl, p_partner[x.o], p_id[x.o], 'issue', p_member[x.o],
		p_points[x.o], (SELECT c.issue_price_micros FROM rate_cards c
			WHERE c.partner_id = p_partner[x.o] AND c.effective_from <= v_at
			ORDER BY c.effective_from DESC LIMIT 1)
	FROM unnest(v_ord, v_entry) AS x(o, e);
	INSERT INTO transfers (entry_id, debit_account, credit_account, points)
	SELECT x.e, ia.id, ma.id, p_points[x.o]
	FROM unnest(v_ord, v_entry) AS x(o, e)
	JOIN accounts ia ON ia.name = 'issued:' || p_partner[x.o]
	JOIN accounts ma ON ma.kind = 'member' AND ma.member = p_member[x.o]
	ORDER BY x.e;
	GET DIAGNOSTICS v_rows = ROW_COUNT;
	IF v_rows <> v_n THEN
		RAISE EXCEPTION 'assert: % transfers for % issues', v_rows, v_n;
	END IF;
	UPDATE accounts a SET credits_posted = a.credits_posted + s.pts
	FROM (SELECT p_member[o] AS m, sum(p_points[o]) AS pts FROM unnest(v_ord) o GROUP BY 1) s
	WHERE a.kind = 'member' AND a.member = s.m;
	WITH l AS (
		INSERT INTO lots (account_id, member, partner_id, entry_id, points, remaining,
			issued_at, expires_at)
		SELECT ma.id, p_member[x.o], p_partner[x.o], x.e, p_points[x.o], p_points[x.o], v_at, v_exp
		FROM unnest(v_ord, v_entry) AS x(o, e)
		JOIN accounts ma ON ma.kind = 'member' AND ma.member = p_member[x.o]
		ORDER BY x.e
		RETURNING lots.id, lots.entry_id, lots.points)
	INSERT INTO lot_moves (entry_id, seq, lot_id, points)
	SELECT l.entry_id, 1, l.id, l.points FROM l;
	-- each member's available balance is now its last reply's balance
	IF EXISTS (SELECT 1 FROM (SELECT DISTINCT ON (p_member[x.o]) p_member[x.o] AS m, x.b
			FROM unnest(v_ord, v_bal) AS x(o, b) ORDER BY p_member[x.o], x.o DESC) last
		JOIN accounts a ON a.kind = 'member' AND a.member = last.m
		WHERE ledger_available_points(a.id, last.m, v_at) <> last.b) THEN
		RAISE EXCEPTION 'assert: a member''s balance after the issue set is not its last reply''s';
	END IF;
	RETURN QUERY SELECT x.o, x.e, x.b,
		to_char(v_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), v_pl
	FROM unnest(v_ord, v_entry, v_bal) AS x(o, e, b);
END
$$;

-- A member is known (redeem, reverse, GET /v1/members) once points were
-- issued to it, not merely when its account row exists: 002 created the
-- account of every issue of a group before judging, so a redeem that came
-- before the member's first issue in the same group got insufficient_points
-- where one-by-one posting answers unknown_member (found by
-- tests/integration/06_post_group_equiv.sh).
CREATE OR REPLACE FUNCTION post_judge(p_partner text, p_type text, p_member text, p_points bigint,
	p_reverses text, p_at timestamptz,
	OUT code text, OUT acct bigint, OUT balance_after bigint,
	OUT orig_entry bigint, OUT orig_type text, OUT orig_done bigint)
LANGUAGE plpgsql AS $$
DECLARE
	o       record;
	v_lot   record;
	v_avail bigint;
	v_gain  bigint;
BEGIN
	IF p_type = 'reverse' THEN
		SELECT m.type, m.member, m.points, m.reversed_points, m.entry_id INTO o
		FROM messages m WHERE m.partner_id = p_partner AND m.msg_id = p_reverses;
		IF NOT FOUND THEN
			code := 'unknown_original';
			RETURN;
		END IF;
		IF o.type = 'reverse' OR o.member <> p_member THEN
			code := 'invalid_message';
			RETURN;
		END IF;
		orig_entry := o.entry_id;
		orig_type := o.type;
		orig_done := o.reversed_points;
	END IF;
	-- a member is known once points were issued to it: an account that
	-- post_lock_group created for a later issue of the same group, or one
	-- left by an issue refused as a duplicate, does not make it known
	SELECT a.id INTO acct FROM accounts a WHERE a.kind = 'member' AND a.member = p_member
	  AND (a.credits_posted > 0 OR p_type = 'issue');
	IF acct IS NULL THEN
		IF p_type <> 'issue' THEN
			code := 'unknown_member';
			RETURN;
		END IF;
		acct := ledger_member_account(p_member);
	END IF;
	IF p_type = 'reverse' THEN
		IF p_points > o.points - o.reversed_points THEN
			code := 'over_reversal';
			RETURN;
		END IF;
	END IF;
	v_avail := ledger_available_points(acct, p_member, p_at);
	IF p_type = 'issue' THEN
		balance_after := v_avail + p_points;
	ELSIF p_type = 'redeem' THEN
		IF v_avail < p_points THEN
			code := 'insufficient_points';
			RETURN;
		END IF;
		balance_after := v_avail - p_points;
	ELSIF orig_type = 'issue' THEN
		SELECT l.remaining, l.expires_at INTO v_lot FROM lots l WHERE l.entry_id = orig_entry;
		IF NOT FOUND OR v_lot.remaining < p_points OR v_lot.expires_at <= p_at THEN
			code := 'insufficient_points';
			RETURN;
		END IF;
		balance_after := v_avail - p_points;
	ELSE
		SELECT coalesce(sum(pl.amt) FILTER (WHERE pl.expires_at > p_at), 0) INTO v_gain
		FROM post_restore_plan(orig_entry, orig_done, p_points) pl;
		balance_after := v_avail + v_gain;
	END IF;
END
$$;

CREATE OR REPLACE FUNCTION member_summary(p_member text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
	v_at   timestamptz := clock_timestamp();
	v_acct bigint;
BEGIN
	SELECT a.id INTO v_acct FROM accounts a WHERE a.kind = 'member' AND a.member = p_member
	  AND a.credits_posted > 0;
	IF v_acct IS NULL THEN
		RETURN NULL;
	END IF;
	RETURN json_build_object('member', p_member,
		'balance', ledger_available_points(v_acct, p_member, v_at),
		'expiring', coalesce((SELECT json_agg(json_build_object(
				'expires_at', to_char(x.e AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
				'points', x.pts) ORDER BY x.e)
			FROM (SELECT l.expires_at AS e, sum(l.remaining) AS pts FROM lots l
				WHERE l.member = p_member AND l.remaining > 0 AND l.expires_at > v_at
				  AND l.expires_at <= v_at + interval '90 days'
				GROUP BY l.expires_at) x), '[]'::json));
END
$$;

-- post_group of 002, with the issue set posted first (groups of four or
-- more; a single message goes the plain way, which stays the baseline of
-- commit_max_messages = 1) and its messages skipped by the loop.
CREATE OR REPLACE FUNCTION post_group(p_partner text[], p_id text[], p_jws text[], p_sha256 text[],
	p_kid text[], p_pre_error text[], p_type text[], p_member text[], p_points bigint[],
	p_reverses text[])
RETURNS TABLE (ord int, outcome text, code text, entry bigint, balance bigint,
	accepted_at text, period text, receipt text)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
	n       int := coalesce(array_length(p_partner, 1), 0);
	i       int;
	v_set   settings%ROWTYPE;
	v_at    timestamptz;
	v_j     record;
	v_entry bigint;
	v_pl    text;
	v_ps    timestamptz;
	v_pe    timestamptz;
	v_s     record;
	v_done  boolean[] := array_fill(false, ARRAY[greatest(n, 1)]);
BEGIN
	IF n <> coalesce(array_length(p_id, 1), 0) OR n <> coalesce(array_length(p_jws, 1), 0)
	    OR n <> coalesce(array_length(p_sha256, 1), 0) OR n <> coalesce(array_length(p_kid, 1), 0)
	    OR n <> coalesce(array_length(p_pre_error, 1), 0) OR n <> coalesce(array_length(p_type, 1), 0)
	    OR n <> coalesce(array_length(p_member, 1), 0) OR n <> coalesce(array_length(p_points, 1), 0)
	    OR n <> coalesce(array_length(p_reverses, 1), 0) THEN
		RAISE EXCEPTION 'post_group: arrays of different lengths';
	END IF;
	PERFORM post_lock();
	SELECT * INTO v_set FROM settings;
	PERFORM post_lock_group(p_partner, p_type, p_member, p_reverses, p_pre_error);
	IF n >= 4 THEN
		FOR v_s IN SELECT * FROM post_issue_set(p_partner, p_id, p_jws, p_sha256, p_kid,
			p_pre_error, p_type, p_member, p_points, p_reverses) LOOP
			v_done[v_s.s_ord] := true;
			ord := v_s.s_ord; outcome := 'posted'; code := NULL; entry := v_s.s_entry;
			balance := v_s.s_balance; accepted_at := v_s.s_accepted_at;
			period := v_s.s_period; receipt := NULL;
			RETURN NEXT;
		END LOOP;
	END IF;
	FOR i IN 1 .. n LOOP
		IF v_done[i] THEN
			CONTINUE;
		END IF;
		ord := i;
		outcome := NULL; code := NULL; entry := NULL; balance := NULL;
		accepted_at := NULL; period := NULL; receipt := NULL;
		IF p_id[i] IS NOT NULL THEN
			SELECT s.* INTO outcome, code, entry, balance, accepted_at, period, receipt
			FROM post_stored(p_partner[i], p_id[i], p_jws[i]) s;
			IF FOUND THEN
				RETURN NEXT;
				CONTINUE;
			END IF;
		END IF;
		outcome := 'rejected';
		IF p_pre_error[i] IS NOT NULL THEN
			code := p_pre_error[i];
			RETURN NEXT;
			CONTINUE;
		END IF;
		IF p_partner[i] IS NULL OR p_id[i] IS NULL OR p_member[i] IS NULL
		    OR p_jws[i] IS NULL OR p_sha256[i] IS NULL OR p_kid[i] IS NULL
		    OR p_points[i] IS NULL OR p_points[i] NOT BETWEEN 1 AND 1000000000
		    OR p_type[i] IS NULL OR p_type[i] NOT IN ('issue', 'redeem', 'reverse')
		    OR (p_type[i] = 'reverse') <> (p_reverses[i] IS NOT NULL) THEN
			code := 'invalid_message';
			RETURN NEXT;
			CONTINUE;
		END IF;
		v_at := clock_timestamp();
		v_j := post_judge(p_partner[i], p_type[i], p_member[i], p_points[i], p_reverses[i], v_at);
		IF v_j.code IS NOT NULL THEN
			code := v_j.code;
			RETURN NEXT;
			CONTINUE;
		END IF;
		IF v_pl IS NULL OR v_at < v_ps OR v_at >= v_pe THEN
			SELECT r.label, r.starts_at, r.ends_at INTO v_pl, v_ps, v_pe FROM period_row_for(v_at) r;
		END IF;
		v_entry := nextval('entries_id_seq');
		INSERT INTO messages (partner_id, msg_id, entry_id, jws, sha256, kid, type, member,
			points, reverses, balance, accepted_at, period)
		VALUES (p_partner[i], p_id[i], v_entry, p_jws[i], p_sha256[i], p_kid[i], p_type[i],
			p_member[i], p_points[i], p_reverses[i], v_j.balance_after, v_at, v_pl)
		ON CONFLICT (partner_id, msg_id) DO NOTHING;
		IF NOT FOUND THEN
			-- another instance posted this id meanwhile: its outcome is ours
			SELECT s.* INTO outcome, code, entry, balance, accepted_at, period, receipt
			FROM post_stored(p_partner[i], p_id[i], p_jws[i]) s;
			IF NOT FOUND THEN
				RAISE EXCEPTION 'post_group: % of % conflicts but is not stored', p_id[i], p_partner[i];
			END IF;
			RETURN NEXT;
			CONTINUE;
		END IF;
		PERFORM post_write_entry(v_entry, v_pl, p_partner[i], p_id[i], p_type[i], p_member[i],
			v_j.acct, p_points[i], v_at, v_j.orig_entry, v_j.orig_type);
		IF p_type[i] = 'issue' THEN
			WITH l AS (
				INSERT INTO lots (account_id, member, partner_id, entry_id, points, remaining,
					issued_at, expires_at)
				VALUES (v_j.acct, p_member[i], p_partner[i], v_entry, p_points[i], p_points[i], v_at,
					ledger_lot_expiry(v_at, v_set.validity_rule, v_set.validity_n, v_set.timezone))
				RETURNING id)
			INSERT INTO lot_moves (entry_id, seq, lot_id, points)
			SELECT v_entry, 1, l.id, p_points[i] FROM l;
		ELSIF p_type[i] = 'redeem' THEN
			PERFORM post_consume_lots(v_entry, p_member[i], p_points[i], v_at);
		ELSE
			PERFORM post_reverse_lots(v_entry, v_j.orig_entry, v_j.orig_type, v_j.orig_done,
				p_points[i]);
		END IF;
		IF ledger_available_points(v_j.acct, p_member[i], v_at) <> v_j.balance_after THEN
			RAISE EXCEPTION 'assert: entry % leaves member % a balance other than %',
				v_entry, p_member[i], v_j.balance_after;
		END IF;
		outcome := 'posted';
		entry := v_entry;
		balance := v_j.balance_after;
		accepted_at := to_char(v_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
		period := v_pl;
		RETURN NEXT;
	END LOOP;
END
$$;

GRANT EXECUTE ON FUNCTION
	post_issue_set(text[], text[], text[], text[], text[], text[], text[], text[], bigint[], text[])
TO pointsd;
