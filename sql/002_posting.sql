-- 002_posting.sql - the posting logic of the points ledger: periods, lot
-- expiry, rate cards in force, and post_group(), which judges and posts one
-- group of verified messages. It never updates or deletes history (entries,
-- transfers, lot_moves, receipts) and never touches a row every posting shares.
-- Applied after 001 by `pointsctl init`, in one transaction, as the superuser.

-- ---------------------------------------------------------------- locks

-- Key of the period lock (ASCII "points" = 0x706f696e7473). Every posting
-- transaction holds it shared (post_lock); the period cut-over of settlement
-- takes it exclusively, so it waits for every posting in flight.
CREATE FUNCTION post_lock_key() RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 123623812527219::bigint $$;

CREATE FUNCTION post_lock() RETURNS void
LANGUAGE sql AS $$ SELECT pg_advisory_xact_lock_shared(post_lock_key()) $$;

-- ---------------------------------------------------------------- time

-- First instant of local day d in IANA zone tz. Also right when midnight
-- does not exist (DST gap: the day starts at the transition) or exists twice
-- (fall-back to 00:00: the earlier occurrence).
CREATE FUNCTION ledger_day_start(d date, tz text) RETURNS timestamptz
LANGUAGE plpgsql STABLE STRICT AS $$
DECLARE
	c   timestamptz := d::timestamp AT TIME ZONE tz;
	s   interval;
	lo  timestamptz;
	hi  timestamptz;
	mid timestamptz;
BEGIN
	IF (c AT TIME ZONE tz) = d::timestamp THEN
		FOREACH s IN ARRAY ARRAY['3 hours', '2 hours', '1 hour', '30 minutes']::interval[] LOOP
			IF ((c - s) AT TIME ZONE tz) = d::timestamp THEN
				RETURN c - s;
			END IF;
		END LOOP;
		RETURN c;
	END IF;
	-- midnight is in a gap: the first instant whose local date is d
	lo := c - interval '1 day';
	hi := c + interval '1 day';
	WHILE hi - lo > interval '1 microsecond' LOOP
		mid := lo + (hi - lo) / 2;
		IF (mid AT TIME ZONE tz)::date >= d THEN
			hi := mid;
		ELSE
			lo := mid;
		END IF;
	END LOOP;
	RETURN hi;
END
$$;

-- The settlement period of a cycle containing ts: labels 2026-11-22,
-- 2026-W47 (ISO week, Monday to Monday), 2026-11; cut-off at local midnight.
CREATE FUNCTION period_bounds(ts timestamptz, cycle text, tz text,
	OUT label text, OUT starts_at timestamptz, OUT ends_at timestamptz)
LANGUAGE plpgsql STABLE STRICT AS $$
DECLARE
	d     date := (ts AT TIME ZONE tz)::date;
	first date;
	nxt   date;
BEGIN
	CASE cycle
	WHEN 'daily' THEN
		first := d;
		nxt := d + 1;
		label := to_char(d, 'YYYY-MM-DD');
	WHEN 'weekly' THEN
		first := d - (extract(isodow FROM d)::int - 1);
		nxt := first + 7;
		label := to_char(d, 'IYYY-"W"IW');
	WHEN 'monthly' THEN
		first := make_date(extract(year FROM d)::int, extract(month FROM d)::int, 1);
		nxt := (first + interval '1 month')::date;
		label := to_char(d, 'YYYY-MM');
	ELSE
		RAISE EXCEPTION 'period_bounds: unknown cycle %', cycle;
	END CASE;
	starts_at := ledger_day_start(first, tz);
	ends_at := ledger_day_start(nxt, tz);
END
$$;

-- The open period containing ts, created from the current settings when
-- none does. A new period never overlaps an older one: after a change of
-- cycle or zone it starts where the previous one ended, and if its label is
-- already taken it runs on to the end of the following period. Raises
-- period_closed if ts lies in a closed period.
CREATE FUNCTION period_row_for(ts timestamptz,
	OUT label text, OUT starts_at timestamptz, OUT ends_at timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
	r     record;
	b     record;
	s     record;
	v_start timestamptz;
	v_next  timestamptz;
	tries int := 0;
BEGIN
	LOOP
		SELECT p.label, p.starts_at, p.ends_at, p.status INTO r
		FROM periods p WHERE p.starts_at <= ts ORDER BY p.starts_at DESC LIMIT 1;
		IF FOUND AND r.ends_at > ts THEN
			IF r.status = 'closed' THEN
				RAISE EXCEPTION 'period_closed: period % containing % is closed', r.label, ts
					USING ERRCODE = 'P0001';
			END IF;
			label := r.label;
			starts_at := r.starts_at;
			ends_at := r.ends_at;
			RETURN;
		END IF;
		tries := tries + 1;
		IF tries > 3 THEN
			RAISE EXCEPTION 'period_row_for: cannot create a period for %', ts;
		END IF;
		SELECT st.cycle, st.timezone INTO s FROM settings st;
		SELECT * INTO b FROM period_bounds(ts, s.cycle, s.timezone);
		v_start := b.starts_at;
		IF r.ends_at IS NOT NULL AND r.ends_at > v_start THEN
			v_start := r.ends_at;
		END IF;
		WHILE EXISTS (SELECT 1 FROM periods p WHERE p.label = b.label) LOOP
			SELECT * INTO b FROM period_bounds(b.ends_at, s.cycle, s.timezone);
		END LOOP;
		SELECT min(p.starts_at) INTO v_next FROM periods p WHERE p.starts_at > ts;
		INSERT INTO periods (label, cycle, timezone, starts_at, ends_at)
		VALUES (b.label, s.cycle, s.timezone, v_start, least(b.ends_at, v_next))
		ON CONFLICT DO NOTHING;
		-- inserted, or a concurrent transaction created it: read it back
	END LOOP;
END
$$;

CREATE FUNCTION period_for(ts timestamptz) RETURNS text
LANGUAGE sql AS $$ SELECT label FROM period_row_for(ts) $$;

-- expires_at of a lot issued at issued_at (ledger.md §2).
CREATE FUNCTION ledger_lot_expiry(issued_at timestamptz, rule text, n int, tz text)
RETURNS timestamptz
LANGUAGE plpgsql STABLE STRICT AS $$
DECLARE
	d date := (issued_at AT TIME ZONE tz)::date;
BEGIN
	IF rule = 'months' THEN
		RETURN ledger_day_start((d + make_interval(months => n))::date + 1, tz);
	ELSIF rule = 'calendar_year' THEN
		RETURN ledger_day_start(make_date(extract(year FROM d)::int + n + 1, 1, 1), tz);
	END IF;
	RAISE EXCEPTION 'ledger_lot_expiry: unknown validity rule %', rule;
END
$$;

CREATE FUNCTION lot_expires_at(issued_at timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
	SELECT ledger_lot_expiry(issued_at, s.validity_rule, s.validity_n, s.timezone)
	FROM settings s
$$;

-- ---------------------------------------------------------------- lookups

-- The card in force at ts (latest effective_from <= ts); all NULL if none.
-- (plpgsql rather than sql here and below: its plans are cached per session)
CREATE FUNCTION rate_card_at(partner text, ts timestamptz) RETURNS rate_cards
LANGUAGE plpgsql STABLE AS $$
DECLARE
	r rate_cards%ROWTYPE;
BEGIN
	SELECT * INTO r FROM rate_cards c
	WHERE c.partner_id = partner AND c.effective_from <= ts
	ORDER BY c.effective_from DESC LIMIT 1;
	RETURN r;
END
$$;

-- Id of issued:<partner> or redeemed:<partner>: created with the partner
-- (sql/006), and here on first use if missing.
-- Only read afterwards (partner balances are derived from transfers).
CREATE FUNCTION ledger_partner_account(p_kind text, p_partner text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	v_id bigint;
BEGIN
	SELECT id INTO v_id FROM accounts WHERE name = p_kind || ':' || p_partner;
	IF v_id IS NULL THEN
		INSERT INTO accounts (name, kind, partner_id)
		VALUES (p_kind || ':' || p_partner, p_kind, p_partner) ON CONFLICT DO NOTHING;
		SELECT id INTO v_id FROM accounts WHERE name = p_kind || ':' || p_partner;
	END IF;
	RETURN v_id;
END
$$;

-- Id of member:<member>, created on demand and locked.
CREATE FUNCTION ledger_member_account(p_member text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	v_id bigint;
BEGIN
	INSERT INTO accounts (name, kind, member)
	VALUES ('member:' || p_member, 'member', p_member) ON CONFLICT DO NOTHING;
	SELECT id INTO v_id FROM accounts
	WHERE kind = 'member' AND member = p_member FOR UPDATE;
	RETURN v_id;
END
$$;

-- Available balance at p_at: the account balance (= Σ remaining of the
-- member's lots, ledger.md §1 invariant 3) less the remaining points of
-- lots expired but not yet swept, so only those few lots are read.
CREATE FUNCTION ledger_available_points(p_account bigint, p_member text, p_at timestamptz)
RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
DECLARE
	v_points bigint;
BEGIN
	SELECT a.credits_posted - a.debits_posted
		- coalesce((SELECT sum(l.remaining) FROM lots l
			WHERE l.member = p_member AND l.remaining > 0
			  AND l.expires_at <= p_at), 0)::bigint
	INTO v_points FROM accounts a WHERE a.id = p_account;
	RETURN v_points;
END
$$;

-- Which consumptions of a redeem a reversal of p_points restores when
-- p_done points are already restored: most recently consumed first.
CREATE FUNCTION post_restore_plan(p_entry bigint, p_done bigint, p_points bigint)
RETURNS TABLE (seq int, lot_id bigint, amt bigint, fee_micros bigint, expires_at timestamptz)
LANGUAGE sql STABLE AS $$
	SELECT c.seq, c.lot_id,
		(least(c.cum, p_done + p_points) - greatest(c.cum - c.used, p_done))::bigint,
		c.fee_micros, l.expires_at
	FROM (SELECT m.seq, m.lot_id, m.fee_micros, -m.points AS used,
			sum(-m.points) OVER (ORDER BY m.seq DESC) AS cum
		FROM lot_moves m WHERE m.entry_id = p_entry AND m.points < 0) c
	JOIN lots l ON l.id = c.lot_id
	WHERE c.cum > p_done AND c.cum - c.used < p_done + p_points
	ORDER BY c.seq DESC
$$;

-- The stored outcome of (partner, id): replayed if the bytes are the same,
-- duplicate_conflict if not; no row if the id is free.
CREATE FUNCTION post_stored(p_partner text, p_id text, p_jws text)
RETURNS TABLE (outcome text, code text, entry bigint, balance bigint,
	accepted_at text, period text, receipt text)
LANGUAGE plpgsql STABLE AS $$
BEGIN
	RETURN QUERY SELECT CASE WHEN m.jws = p_jws THEN 'replayed' ELSE 'rejected' END,
		CASE WHEN m.jws = p_jws THEN NULL ELSE 'duplicate_conflict' END,
		CASE WHEN m.jws = p_jws THEN m.entry_id END,
		CASE WHEN m.jws = p_jws THEN m.balance END,
		CASE WHEN m.jws = p_jws THEN
			to_char(m.accepted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') END,
		CASE WHEN m.jws = p_jws THEN m.period END,
		CASE WHEN m.jws = p_jws THEN r.receipt END
	FROM messages m LEFT JOIN receipts r ON r.entry_id = m.entry_id
	WHERE m.partner_id = p_partner AND m.msg_id = p_id;
END
$$;

-- ---------------------------------------------------------------- judging

-- Ledger rules of protocol.md §2.1, in order, for one message at p_at.
-- Reads only. code NULL = may post; then acct is the member account and
-- balance_after the available balance the posting will leave.
CREATE FUNCTION post_judge(p_partner text, p_type text, p_member text, p_points bigint,
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

-- ---------------------------------------------------------------- writing

-- The entry, its one transfer and the member account's move, in one
-- statement. Prices: an issue or redeem takes the partner's card in force at
-- p_at (settlement.md §1), a reverse copies its original's. The member is
-- credited by an issue and a reversal of a redeem, debited otherwise; the
-- account's CHECK refuses a negative balance.
CREATE FUNCTION post_write_entry(p_entry bigint, p_period text, p_partner text, p_id text,
	p_type text, p_member text, p_acct bigint, p_points bigint, p_at timestamptz,
	p_orig_entry bigint, p_orig_type text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	v_kind   text := CASE WHEN coalesce(p_orig_type, p_type) = 'issue' THEN 'issued' ELSE 'redeemed' END;
	v_credit boolean := p_type = 'issue' OR coalesce(p_orig_type = 'redeem', false);
	v_other  bigint := coalesce((SELECT a.id FROM accounts a WHERE a.name = v_kind || ':' || p_partner),
		ledger_partner_account(v_kind, p_partner));
BEGIN
	IF p_points IS NULL OR p_points <= 0 OR p_acct IS NULL OR v_other IS NULL THEN
		RAISE EXCEPTION 'assert: entry % moves % points between % and %', p_entry, p_points, p_acct, v_other;
	END IF;
	WITH e AS (
		INSERT INTO entries (id, kind, accepted_at, period, partner_id, msg_id, type, member,
			points, reverses_entry, issue_price_micros, redeem_price_micros)
		VALUES (p_entry, 'message', p_at, p_period, p_partner, p_id, p_type, p_member,
			p_points, p_orig_entry,
			CASE WHEN p_orig_entry IS NOT NULL THEN
				(SELECT o.issue_price_micros FROM entries o WHERE o.id = p_orig_entry)
			WHEN p_type = 'issue' THEN
				(SELECT c.issue_price_micros FROM rate_cards c WHERE c.partner_id = p_partner
				  AND c.effective_from <= p_at ORDER BY c.effective_from DESC LIMIT 1) END,
			CASE WHEN p_orig_entry IS NOT NULL THEN
				(SELECT o.redeem_price_micros FROM entries o WHERE o.id = p_orig_entry)
			WHEN p_type = 'redeem' THEN
				(SELECT c.redeem_price_micros FROM rate_cards c WHERE c.partner_id = p_partner
				  AND c.effective_from <= p_at ORDER BY c.effective_from DESC LIMIT 1) END)),
	t AS (
		INSERT INTO transfers (entry_id, debit_account, credit_account, points)
		VALUES (p_entry, CASE WHEN v_credit THEN v_other ELSE p_acct END,
			CASE WHEN v_credit THEN p_acct ELSE v_other END, p_points))
	UPDATE accounts SET
		credits_posted = credits_posted + CASE WHEN v_credit THEN p_points ELSE 0 END,
		debits_posted = debits_posted + CASE WHEN v_credit THEN 0 ELSE p_points END
	WHERE id = p_acct AND kind = 'member';
	IF NOT FOUND THEN
		RAISE EXCEPTION 'assert: entry % has no member account %', p_entry, p_acct;
	END IF;
END
$$;

-- A redeem consumes unexpired lots, earliest expiry first (ties: lowest
-- entry id); the fee of each is the clearing fee of the lot's issuer in
-- force at p_at.
CREATE FUNCTION post_consume_lots(p_entry bigint, p_member text, p_points bigint,
	p_at timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	r      record;
	v_left bigint := p_points;
	v_take bigint;
	v_seq  int := 0;
BEGIN
	FOR r IN SELECT l.id, l.partner_id, l.remaining FROM lots l
		WHERE l.member = p_member AND l.remaining > 0 AND l.expires_at > p_at
		ORDER BY l.expires_at, l.entry_id
	LOOP
		v_take := least(r.remaining, v_left);
		v_seq := v_seq + 1;
		WITH u AS (UPDATE lots SET remaining = remaining - v_take WHERE id = r.id)
		INSERT INTO lot_moves (entry_id, seq, lot_id, points, fee_micros)
		VALUES (p_entry, v_seq, r.id, -v_take,
			(SELECT c.clearing_fee_micros FROM rate_cards c WHERE c.partner_id = r.partner_id
			  AND c.effective_from <= p_at ORDER BY c.effective_from DESC LIMIT 1));
		v_left := v_left - v_take;
		EXIT WHEN v_left = 0;
	END LOOP;
	IF v_left <> 0 THEN
		RAISE EXCEPTION 'assert: redeem entry % lacks % points in lots', p_entry, v_left;
	END IF;
END
$$;

-- A reverse takes its points out of the issue's own lot, or gives a
-- redeem's back to the lots it consumed, most recently consumed first.
CREATE FUNCTION post_reverse_lots(p_entry bigint, p_orig_entry bigint, p_orig_type text,
	p_orig_done bigint, p_points bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	r     record;
	v_seq int := 0;
	v_sum bigint := 0;
BEGIN
	IF p_orig_type = 'issue' THEN
		WITH l AS (UPDATE lots SET remaining = remaining - p_points WHERE entry_id = p_orig_entry
			RETURNING id)
		INSERT INTO lot_moves (entry_id, seq, lot_id, points) SELECT p_entry, 1, l.id, -p_points FROM l;
		v_sum := p_points;
	ELSE
		FOR r IN SELECT * FROM post_restore_plan(p_orig_entry, p_orig_done, p_points) LOOP
			v_seq := v_seq + 1;
			WITH u AS (UPDATE lots SET remaining = remaining + r.amt WHERE id = r.lot_id)
			INSERT INTO lot_moves (entry_id, seq, lot_id, points, fee_micros)
			VALUES (p_entry, v_seq, r.lot_id, r.amt, r.fee_micros);
			v_sum := v_sum + r.amt;
		END LOOP;
	END IF;
	IF v_sum <> p_points THEN
		RAISE EXCEPTION 'assert: reversal entry % moves % of % points', p_entry, v_sum, p_points;
	END IF;
	UPDATE messages SET reversed_points = reversed_points + p_points WHERE entry_id = p_orig_entry;
END
$$;

-- Creates the member accounts of the group's issues and locks every member
-- account (then every reversed original) of the group in a fixed order, so
-- that concurrent groups and the expiry job serialize per member without
-- deadlocking each other.
CREATE FUNCTION post_lock_group(p_partner text[], p_type text[], p_member text[],
	p_reverses text[], p_pre_error text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	IF 'issue' = ANY (p_type) THEN
		INSERT INTO accounts (name, kind, member)
		SELECT 'member:' || s.m, 'member', s.m
		FROM (SELECT DISTINCT u.m FROM unnest(p_member, p_type, p_pre_error) AS u(m, t, e)
			WHERE u.t = 'issue' AND u.e IS NULL AND u.m IS NOT NULL) s
		ORDER BY s.m
		ON CONFLICT DO NOTHING;
	END IF;
	-- (= ANY of an array: an index probe per member whatever the plan)
	PERFORM 1 FROM accounts a WHERE a.kind = 'member' AND a.member = ANY (ARRAY(SELECT u.m
		FROM unnest(p_member, p_pre_error) AS u(m, e) WHERE u.e IS NULL AND u.m IS NOT NULL))
	ORDER BY a.member FOR UPDATE;
	IF 'reverse' = ANY (p_type) THEN
		PERFORM 1 FROM messages m
		WHERE (m.partner_id, m.msg_id) IN (SELECT u.p, u.r
			FROM unnest(p_partner, p_reverses, p_type, p_pre_error) AS u(p, r, t, e)
			WHERE u.t = 'reverse' AND u.e IS NULL AND u.r IS NOT NULL)
		ORDER BY m.partner_id, m.msg_id FOR UPDATE OF m;
	END IF;
END
$$;

-- ---------------------------------------------------------------- post_group

-- (its set-based paths, post_group_sets() and post_sets(), are in
-- sql/005_posting_sets.sql; PL/pgSQL resolves them when post_group runs)

-- Judges and posts one group of messages, one row per message (in any
-- order; ord says which): replayed / rejected (code) / posted (receipt
-- NULL: the caller signs it and inserts it into receipts before COMMIT).
-- The group's issue set goes first (groups of four or more; a single
-- message goes the plain way, which stays the baseline of
-- commit_max_messages = 1), then the loop judges the rest in array order.
-- A rejected message writes nothing. Deadlocks with another instance
-- (40P01) and an id posted concurrently (40001) fail the whole group: the
-- caller retries it.
CREATE FUNCTION post_group(p_partner text[], p_id text[], p_jws text[], p_sha256 text[],
	p_kid text[], p_pre_error text[], p_type text[], p_member text[], p_points bigint[],
	p_reverses text[])
RETURNS TABLE (ord int, outcome text, code text, entry bigint, balance bigint,
	accepted_at text, period text, receipt text)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
-- every statement of the posting path reads or writes a few rows per
-- message of a table through an index; a plan made while the ledger was
-- nearly empty (a seq scan hashed into a join) must not stay cached as the
-- tables grow (sql/008 turns merge and hash joins off as well)
SET enable_seqscan = off
SET enable_bitmapscan = off
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
	v_sets  record;
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
		v_sets := post_group_sets(p_partner, p_id, p_jws, p_sha256, p_kid, p_pre_error,
			p_type, p_member, p_points, p_reverses);
		IF v_sets.issues IS NOT NULL OR v_sets.redeems IS NOT NULL OR v_sets.reverses IS NOT NULL THEN
			-- the sets share one accepted_at, taken after the locks (a group of
			-- replays and refusals alone neither reads nor creates a period)
			v_at := clock_timestamp();
			SELECT r.label, r.starts_at, r.ends_at INTO v_pl, v_ps, v_pe FROM period_row_for(v_at) r;
			FOR v_s IN SELECT * FROM post_sets(v_sets.issues, v_sets.redeems, v_sets.reverses,
					v_at, v_pl, p_partner, p_id, p_jws, p_sha256, p_kid, p_member, p_points,
					p_reverses) LOOP
				v_done[v_s.s_ord] := true;
				ord := v_s.s_ord; code := v_s.s_code; entry := v_s.s_entry;
				outcome := CASE WHEN v_s.s_code IS NULL THEN 'posted' ELSE 'rejected' END;
				balance := v_s.s_balance; accepted_at := v_s.s_accepted_at;
				period := v_s.s_period; receipt := NULL;
				RETURN NEXT;
			END LOOP;
		END IF;
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

-- ---------------------------------------------------------------- reads

-- GET /v1/members/{member}: available balance and the points expiring in
-- the next 90 days by expiry instant; NULL if the member has no account.
CREATE FUNCTION member_summary(p_member text) RETURNS json
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

-- GET /v1/messages/{id}: the stored reply (protocol.md §4), NULL if none.
CREATE FUNCTION message_reply(p_partner text, p_id text) RETURNS json
LANGUAGE sql STABLE AS $$
	SELECT json_build_object('status', 'posted', 'replayed', false,
		'partner', m.partner_id, 'id', m.msg_id, 'type', m.type, 'member', m.member,
		'points', m.points, 'balance', m.balance, 'entry', m.entry_id,
		'accepted_at', to_char(m.accepted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
		'period', m.period, 'receipt', r.receipt)
	FROM messages m LEFT JOIN receipts r ON r.entry_id = m.entry_id
	WHERE m.partner_id = p_partner AND m.msg_id = p_id
$$;

-- ---------------------------------------------------------------- rights

GRANT EXECUTE ON FUNCTION
	post_lock_key(), post_lock(),
	ledger_day_start(date, text),
	period_bounds(timestamptz, text, text), period_row_for(timestamptz), period_for(timestamptz),
	ledger_lot_expiry(timestamptz, text, int, text), lot_expires_at(timestamptz),
	rate_card_at(text, timestamptz),
	ledger_partner_account(text, text), ledger_member_account(text),
	ledger_available_points(bigint, text, timestamptz),
	post_restore_plan(bigint, bigint, bigint), post_stored(text, text, text),
	post_judge(text, text, text, bigint, text, timestamptz),
	post_write_entry(bigint, text, text, text, text, text, bigint, bigint, timestamptz, bigint, text),
	post_consume_lots(bigint, text, bigint, timestamptz),
	post_reverse_lots(bigint, bigint, text, bigint, bigint),
	post_lock_group(text[], text[], text[], text[], text[]),
	post_group(text[], text[], text[], text[], text[], text[], text[], text[], bigint[], text[]),
	member_summary(text), message_reply(text, text)
TO pointsd;
