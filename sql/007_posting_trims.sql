-- 007_posting_trims.sql - a cost of every posting removed, measured with
-- bench/sql_post_group.sh (docs/performance.md). Applied after 006 by
-- `pointsctl init`, in one transaction. (The second trim, post_lock_group()
-- locking before it inserts, is in sql/008 with that function's plans.)

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
