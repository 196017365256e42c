#!/bin/bash
# sql_post_group.sh - the database's share of posting, without TLS, HTTP or
# signatures: post_group() called directly on a throwaway cluster with the
# loadgen's mix (70% issue of 100-999 points, 20% redeem of 1-5, 10% reverse
# of 1-5 of an earlier issue) over MEMBERS members, in groups of GROUP
# messages, after a preload of one issue per member. Prints one JSON line:
# microseconds of the backend per message (wall time of one backend doing
# nothing else) and the outcome counts.
#
#   bench/sql_post_group.sh [GROUP] [GROUPS] [MEMBERS]
#   (defaults 1000 20 10000; PTS_BENCH_DIR keeps the cluster in that directory)
set -euo pipefail
cd "$(dirname "$0")/.."
GROUP=${1:-1000}
GROUPS_N=${2:-20}
MEMBERS=${3:-10000}
BIN=${PTS_BIN:-build}
DIR=${PTS_BENCH_DIR:-$(mktemp -d /tmp/pts-sqlbench.XXXXXX)}
PORT=${PTS_BENCH_PGPORT:-$((21000 + RANDOM % 4000))}
PGBIN=$(scripts/pg.sh bindir)
[[ -x $BIN/pointsctl ]] || make -s all >/dev/null
cleanup() { [[ -n ${PTS_BENCH_DIR:-} ]] || { scripts/pg.sh stop "$DIR" >/dev/null 2>&1 || true; rm -rf "$DIR"; }; }
trap cleanup EXIT
chmod 755 "$DIR"
scripts/pg.sh init "$DIR" "$PORT" >/dev/null
scripts/pg.sh start "$DIR" "$PORT" >/dev/null
DB="host=$DIR port=$PORT dbname=points user=postgres"
[[ -S $DIR/.s.PGSQL.$PORT ]] || DB="host=127.0.0.1 port=$PORT dbname=points user=postgres"
psql() { "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 "$DB" "$@"; }
"$BIN/pointsctl" --db "$DB" init >/dev/null
[[ -z ${PTS_BENCH_SQL:-} ]] || psql -f "$PTS_BENCH_SQL"
psql <<SQL
INSERT INTO partners (id, name, status) VALUES ('acme', 'Acme', 'active'), ('globex', 'Globex', 'active');
INSERT INTO rate_cards (partner_id, issue_price_micros, redeem_price_micros, clearing_fee_micros, effective_from)
SELECT p, 10000, 8000, 1000, now() - interval '1 day' FROM unnest('{acme,globex}'::text[]) p;
CREATE TABLE wl (ord int PRIMARY KEY, partner text, id text, type text, member text,
	points bigint, rev text, jws text);
SELECT setseed(0.42);
-- preload: one issue per member
INSERT INTO wl SELECT g, CASE WHEN g % 2 = 0 THEN 'acme' ELSE 'globex' END, 'p' || g, 'issue',
	'B' || (g - 1), 500, NULL, NULL FROM generate_series(1, $MEMBERS) g;
-- the timed groups
INSERT INTO wl SELECT $MEMBERS + g, CASE WHEN random() < 0.5 THEN 'acme' ELSE 'globex' END,
	't' || g, CASE WHEN r < 0.7 THEN 'issue' WHEN r < 0.9 THEN 'redeem' ELSE 'reverse' END,
	'B' || floor(random() * $MEMBERS)::int, 0, NULL, NULL
FROM (SELECT g, random() AS r FROM generate_series(1, $GROUP * $GROUPS_N) g) s;
UPDATE wl SET points = CASE WHEN type = 'issue' THEN 100 + floor(random() * 900)::int
	ELSE 1 + floor(random() * 5)::int END WHERE ord > $MEMBERS;
-- a reverse names its member's preload issue (each reversed at most once)
UPDATE wl w SET rev = o.id, partner = o.partner
FROM wl o WHERE w.type = 'reverse' AND o.ord <= $MEMBERS AND o.member = w.member;
DELETE FROM wl w USING wl x WHERE w.type = 'reverse' AND x.type = 'reverse'
	AND x.rev = w.rev AND x.ord < w.ord;
UPDATE wl SET jws = 'eyJhbGciOiJFZERTQSJ9.' || md5(id) || repeat('x', 300) || '.' || md5(ord::text);
CREATE TABLE wl2 AS SELECT row_number() OVER (ORDER BY ord)::int AS ord, partner, id, type,
	member, points, rev, jws FROM wl ORDER BY ord;
ALTER TABLE wl2 ADD PRIMARY KEY (ord);
CREATE TABLE answers (ord int, outcome text, code text);
CREATE PROCEDURE post_range(lo int, n int, k int) LANGUAGE plpgsql AS \$\$
DECLARE i int := lo;
BEGIN
	WHILE i < lo + n LOOP
		INSERT INTO answers
		SELECT i - 1 + g.ord, g.outcome, g.code
		FROM (SELECT array_agg(partner ORDER BY ord) p, array_agg(id ORDER BY ord) d,
				array_agg(jws ORDER BY ord) j, array_agg(type ORDER BY ord) t,
				array_agg(member ORDER BY ord) m, array_agg(points ORDER BY ord) pts,
				array_agg(rev ORDER BY ord) v, count(*)::int AS c
			FROM wl2 WHERE ord >= i AND ord < least(i + k, lo + n)) a,
		LATERAL post_group(a.p, a.d, a.j, array_fill(repeat('0', 64), ARRAY[a.c]),
			array_fill('k'::text, ARRAY[a.c]), array_fill(NULL::text, ARRAY[a.c]),
			a.t, a.m, a.pts, a.v) g;
		COMMIT;
		i := i + k;
	END LOOP;
END
\$\$;
CALL post_range(1, $MEMBERS, 1000);
ANALYZE;
SQL
TOTAL=$(psql -c "SELECT count(*) FROM wl2")
T=$(psql <<SQL
\\set ON_ERROR_STOP 1
SELECT pg_backend_pid() AS pid \\gset
\\if $([[ -n ${PTS_BENCH_PERF:-} ]] && echo true || echo false)
\\setenv PTS_BACKEND_PID :pid
\\! perf record -q -F 999 -g -o ${PTS_BENCH_PERF:-/dev/null} -p \$PTS_BACKEND_PID >/dev/null 2>&1 &
\\! sleep 1
\\endif
CREATE TEMP TABLE t0 AS SELECT clock_timestamp() AS t;
CALL post_range($MEMBERS + 1, $TOTAL - $MEMBERS, $GROUP);
SELECT round(extract(epoch FROM clock_timestamp() - t) * 1e6 / ($TOTAL - $MEMBERS)) FROM t0;
SQL
)
[[ -z ${PTS_BENCH_PERF:-} ]] || { pkill -INT -f "perf record -q -F 999 -g -o $PTS_BENCH_PERF" || true; sleep 2; }
OUT=$(psql -c "SELECT json_object_agg(coalesce(code, outcome), n) FROM (SELECT outcome, code, count(*) n FROM answers WHERE ord > $MEMBERS GROUP BY 1, 2) s")
echo "{\"bench\":\"sql_post_group\",\"group\":$GROUP,\"messages\":$((TOTAL - MEMBERS)),\"members\":$MEMBERS,\"us_per_message\":$T,\"outcomes\":$OUT}"
