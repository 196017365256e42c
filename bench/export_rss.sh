#!/bin/bash
# export_rss.sh - memory bound of `pointsctl export`: bulk-loads N entries
# (issues with their transfer, lot, lot move, message and receipt) with SQL
# into a throwaway database, exports them as jsonl under /usr/bin/time -v
# and prints the peak RSS. Exit 1 if it exceeds the limit or the export
# misses entries. Drops its database at the end.
#
#   bench/export_rss.sh [--entries N] [--limit-mib M] [--format F]
#   (defaults: 1000000 entries, 100 MiB, jsonl)
# Environment: PTS_DB_ADMIN (superuser conninfo), PTS_BIN (dir of pointsctl).
set -uo pipefail

N=1000000
LIMIT_MIB=100
FORMAT=jsonl
while (($# > 0)); do
	case $1 in
	--entries) N=$2; shift 2 ;;
	--limit-mib) LIMIT_MIB=$2; shift 2 ;;
	--format) FORMAT=$2; shift 2 ;;
	*) echo "usage: $0 [--entries N] [--limit-mib M] [--format jsonl|csv|hledger]" >&2; exit 2 ;;
	esac
done
[[ $N =~ ^[0-9]+$ && $N -ge 10 ]] || { echo "export_rss: --entries must be 10 or more" >&2; exit 2; }

ADMIN=${PTS_DB_ADMIN:-"host=127.0.0.1 port=54329 dbname=points user=postgres"}
CTL=${PTS_BIN:-build}/pointsctl
DBNAME=pts_bench_export_$$
TMP=$(mktemp -d)
trap 'psql -X -q "$ADMIN" -c "DROP DATABASE IF EXISTS $DBNAME" >/dev/null 2>&1; rm -rf "$TMP"' EXIT

psql -X -q "$ADMIN" -c "CREATE DATABASE $DBNAME" >/dev/null || exit 1
DB="$ADMIN dbname=$DBNAME"
"$CTL" --db "$DB" init >/dev/null || exit 1

t0=$(date +%s)
psql -X -q -o /dev/null -v ON_ERROR_STOP=1 -v n="$N" "$DB" <<'SQL' || { echo "export_rss: bulk load failed" >&2; exit 1; }
BEGIN;
INSERT INTO partners (id, name, status) VALUES ('bench', 'Bench', 'active');
INSERT INTO receipt_keys (kid, public_pem) VALUES ('bench-rk', 'none');
INSERT INTO periods (label, cycle, timezone, starts_at, ends_at)
VALUES ('bench-1', 'daily', 'UTC', now() - interval '3 days', now() - interval '2 days'),
	('bench-2', 'daily', 'UTC', now() - interval '2 days', now() - interval '1 day');
INSERT INTO accounts (name, kind, member)
SELECT 'member:B' || i, 'member', 'B' || i FROM generate_series(1, greatest(:n / 10, 1)) i;
SELECT ledger_partner_account('issued', 'bench');
CREATE TEMP TABLE b AS
SELECT i, 'B' || (i % greatest(:n / 10, 1) + 1) AS member,
	now() - interval '3 days' + i * interval '100 milliseconds' * (86400 * 2 * 10 / :n::numeric) / 10 AS at
FROM generate_series(1, :n) i;
INSERT INTO entries (id, kind, accepted_at, period, partner_id, msg_id, type, member, points, issue_price_micros)
SELECT i, 'message', at, CASE WHEN at < now() - interval '2 days' THEN 'bench-1' ELSE 'bench-2' END,
	'bench', 'b' || i, 'issue', member, 10, 10000 FROM b;
SELECT setval('entries_id_seq', :n);
INSERT INTO messages (partner_id, msg_id, entry_id, jws, sha256, kid, type, member, points, balance, accepted_at, period)
SELECT 'bench', 'b' || b.i, b.i, 'eyJhbGciOiJFZERTQSIsImtpZCI6ImJlbmNoLTEiLCJ0eXAiOiJwb2ludHMrand0In0.' || repeat('x', 180) || b.i
	|| '.' || repeat('s', 86), repeat('0', 64), 'bench-1', 'issue', b.member, 10, 10, b.at, e.period
FROM b JOIN entries e ON e.id = b.i;
INSERT INTO receipts (entry_id, kid, receipt)
SELECT i, 'bench-rk', 'eyJhbGciOiJFZERTQSJ9.' || repeat('r', 300) || i || '.' || repeat('s', 86) FROM b;
INSERT INTO transfers (entry_id, debit_account, credit_account, points)
SELECT b.i, (SELECT id FROM accounts WHERE name = 'issued:bench'), a.id, 10
FROM b JOIN accounts a ON a.kind = 'member' AND a.member = b.member;
INSERT INTO lots (account_id, member, partner_id, entry_id, points, remaining, issued_at, expires_at)
SELECT a.id, b.member, 'bench', b.i, 10, 10, b.at, b.at + interval '2 years'
FROM b JOIN accounts a ON a.kind = 'member' AND a.member = b.member;
INSERT INTO lot_moves (entry_id, seq, lot_id, points) SELECT l.entry_id, 1, l.id, 10 FROM lots l;
UPDATE accounts a SET credits_posted = s.total
FROM (SELECT member, sum(10) AS total FROM b GROUP BY member) s
WHERE a.kind = 'member' AND a.member = s.member;
COMMIT;
ANALYZE;
SQL
t1=$(date +%s)
echo "# loaded $N entries in $((t1 - t0)) s"

/usr/bin/time -v -o "$TMP/time" "$CTL" --db "$DB" export --format "$FORMAT" -o "$TMP/export" >"$TMP/out" 2>"$TMP/err" ||
	{ echo "export_rss: export failed: $(cat "$TMP/err")" >&2; exit 1; }
t2=$(date +%s)
rss_kib=$(awk -F': *' '/Maximum resident set size/ { print $2 }' "$TMP/time")
got=$(grep -c '"entry":' "$TMP/export" || true)
[[ $FORMAT == jsonl ]] || got=$N
size=$(stat -c %s "$TMP/export")
echo "# export of $N entries ($FORMAT, $((size / 1048576)) MiB) in $((t2 - t1)) s: peak RSS $((rss_kib / 1024)) MiB (limit $LIMIT_MIB MiB)"
if [[ $got -ne $N ]]; then
	echo "export_rss: exported $got entries, want $N" >&2
	exit 1
fi
if ((rss_kib > LIMIT_MIB * 1024)); then
	echo "export_rss: peak RSS $((rss_kib / 1024)) MiB is over $LIMIT_MIB MiB" >&2
	exit 1
fi
echo "peak RSS $((rss_kib / 1024)) MiB for $N entries"
