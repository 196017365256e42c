-- 007_posting_trims.sql - two costs of every posting removed, measured with
-- bench/sql_post_group.sh (docs/performance.md). Applied after 006 by
-- `pointsctl init`, in one transaction.

-- 1. transfers_debit and transfers_credit. Each transfer paid two more
-- index insertions (of 14 per issue) for indexes only invariant 2 read, one
-- account at a time. Invariant 2 now sums transfers per account in one pass
-- (a hash aggregate, which on a large ledger is also faster than an index
-- scan per member), and the entries listed for a broken account come from
-- a scan of transfers made only when an invariant is broken.
DROP INDEX transfers_debit;
DROP INDEX transfers_credit;

CREATE OR REPLACE FUNCTION reconcile_inv2()
RETURNS TABLE (invariant int, subject text, expected text, found text, entries text)
LANGUAGE sql STABLE AS $$
	WITH d AS (SELECT t.debit_account AS id, sum(t.points) AS s FROM transfers t GROUP BY 1),
	c AS (SELECT t.credit_account AS id, sum(t.points) AS s FROM transfers t GROUP BY 1),
	s AS (
		SELECT a.id, a.name, a.debits_posted AS dp, a.credits_posted AS cp,
			coalesce(d.s, 0) AS dt, coalesce(c.s, 0) AS ct
		FROM accounts a LEFT JOIN d ON d.id = a.id LEFT JOIN c ON c.id = a.id
		WHERE a.kind = 'member'
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

-- 2. post_lock_group() inserted the member account of every issuing member
-- of the group (ON CONFLICT DO NOTHING: an index probe and a speculative
-- insertion each, nearly always for nothing) before locking them all. It
-- now locks the existing accounts first, in member order, and inserts only
-- the ones that were missing; a row inserted meanwhile by another instance
-- (the insertion skips it) is then locked like the others. Same locks, same
-- order for the existing accounts, so concurrent groups and the expiry job
-- still serialize per member; a new member's row is locked by its insert.
CREATE OR REPLACE FUNCTION post_lock_group(p_partner text[], p_type text[], p_member text[],
	p_reverses text[], p_pre_error text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	v_locked text[];
	v_new    text[];
BEGIN
	-- (= ANY of an array: an index probe per member whatever the plan)
	SELECT array_agg(l.member) INTO v_locked FROM (
		SELECT a.member FROM accounts a WHERE a.kind = 'member' AND a.member = ANY (ARRAY(SELECT u.m
			FROM unnest(p_member, p_pre_error) AS u(m, e) WHERE u.e IS NULL AND u.m IS NOT NULL))
		ORDER BY a.member FOR UPDATE) l;
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
				PERFORM 1 FROM accounts a WHERE a.kind = 'member' AND a.member = ANY (v_new)
				ORDER BY a.member FOR UPDATE;
			END IF;
		END IF;
	END IF;
	IF 'reverse' = ANY (p_type) THEN
		PERFORM 1 FROM messages m
		WHERE (m.partner_id, m.msg_id) IN (SELECT u.p, u.r
			FROM unnest(p_partner, p_reverses, p_type, p_pre_error) AS u(p, r, t, e)
			WHERE u.t = 'reverse' AND u.e IS NULL AND u.r IS NOT NULL)
		ORDER BY m.partner_id, m.msg_id FOR UPDATE OF m;
	END IF;
END
$$;
