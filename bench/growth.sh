#!/bin/bash
# growth.sh - cost growth with the size of the ledger (issue 6): messages/s
# and p99 of the single-message closed loop and of batches with ~10^4 and
# then ~10^7 entries already in the ledger; the 10^7 are bulk-loaded with SQL
# as a consistent ledger (issues only), so `pointsctl reconcile` still holds.
# Own throwaway stack (cluster, certificates, acme and globex, pointsd);
# never touches another stack. Results: bench/results/growth-<stamp>.jsonl
# and a markdown table on stdout (ratio 10^7 / 10^4, target: falls <= 20%).
#
#   bench/growth.sh                       the full run (bulk load of ~10^7: long)
#   BULK_ENTRIES=200000 bench/growth.sh   a small run (smoke test)
#   RECONCILE=1 bench/growth.sh           pointsctl reconcile at the end (minutes at 10^7)
#   BULK_ENTRIES=0 bench/growth.sh        control run: no load, the same size twice
#                                         (how far the two phases differ by noise alone)
#
# Environment (defaults in parentheses):
#   BULK_ENTRIES         entries in the ledger after the load (10000000)
#   SMALL_ENTRIES        issues posted through pointsd first (10000)
#   GROWTH_DURATION      seconds per measured run (15)
#   GROWTH_WARMUP        seconds of unrecorded load after each restart (3)
#   GROWTH_REPEAT        runs per figure, single and batch alternating, the
#                        median taken (1; every run adds its messages: with 3
#                        the small phase ends near 3 x 10^5 entries)
#   BULK_CHUNK           rows per load transaction (1000000)
#   BULK_PAD             1: jws and receipt texts as long as the real ones of
#                        the small phase (~1.9 GB of tables per 10^6 entries);
#                        0: short texts (~1.1 GB per 10^6, a faster load) (1)
#   GROWTH_PG_PORT, GROWTH_TLS_PORT, GROWTH_METRICS_PORT (56060, 18960, 18961)
#   GROWTH_KEEP=1 keeps the stack directory; GROWTH_RESULTS=FILE; BUILD (build)
set -euo pipefail
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
cd "$ROOT"
BUILD=${BUILD:-build}
LG=$ROOT/$BUILD/bench/loadgen
CTL=$ROOT/$BUILD/pointsctl
PGPORT=${GROWTH_PG_PORT:-56060}
TLSPORT=${GROWTH_TLS_PORT:-18960}
METRICSPORT=${GROWTH_METRICS_PORT:-18961}
BULK_ENTRIES=${BULK_ENTRIES:-10000000}
SMALL_ENTRIES=${SMALL_ENTRIES:-10000}
DURATION=${GROWTH_DURATION:-15}
WARMUP=${GROWTH_WARMUP:-3}
REPEAT=${GROWTH_REPEAT:-1}
CHUNK=${BULK_CHUNK:-1000000}
PAD=${BULK_PAD:-1}
RECONCILE=${RECONCILE:-0}
MEMBERS=10000 # the loadgen's default --members: B0..B9999
PARTNERS=acme,globex
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
RESULTS_DIR=$ROOT/bench/results
RESULTS=${GROWTH_RESULTS:-$RESULTS_DIR/growth-$STAMP.jsonl}
# shellcheck disable=SC2034 # bench/stack.sh sets and reads it
PD_PID=''
DIR=''

die() { echo "growth: $*" >&2; exit 1; }
say() { echo "growth: $*" >&2; }

[[ -x $LG && -x $ROOT/$BUILD/pointsd && -x $CTL ]] ||
	die "build first: make all $BUILD/bench/loadgen"
command -v jq >/dev/null || die "jq is missing (scripts/deps.sh)"
for v in BULK_ENTRIES SMALL_ENTRIES DURATION WARMUP REPEAT CHUNK; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer"
done
((REPEAT >= 1 && CHUNK >= 1 && DURATION >= 1)) || die "GROWTH_REPEAT, BULK_CHUNK, GROWTH_DURATION must be >= 1"

DIR=$(mktemp -d /tmp/ptsgrowth.XXXXXX)
ADMIN="host=$DIR/pg port=$PGPORT dbname=points user=postgres"
PSQL="$(scripts/pg.sh bindir)/psql"
mkdir -p "$RESULTS_DIR"

cleanup() {
	stop_pointsd || true
	"$ROOT/scripts/pg.sh" stop "$DIR/pg" >/dev/null 2>&1 || true
	if [[ ${GROWTH_KEEP:-0} == 1 ]]; then
		say "kept $DIR"
	else
		rm -rf "$DIR"
	fi
}
trap cleanup EXIT

# shellcheck source=bench/stack.sh
. "$ROOT/bench/stack.sh"

# as the cluster superuser
psql_q() {
	"$PSQL" -X -A -t -q -v ON_ERROR_STOP=1 "$ADMIN" -c "$1"
}

# loadgen with the stack's partners; its JSON summary on stdout
lg() {
	timeout 900 "$LG" --port "$TLSPORT" --certs "$DIR/certs" --partners "$PARTNERS" "$@" 2>>"$DIR/loadgen.log"
}

j() { jq -r "$1" <<<"$2"; }

entries_count() { psql_q "SELECT count(*) FROM entries"; }

# autovacuum and autoanalyze runs so far on the ledger's tables (they share
# the 2 cores with the measured runs)
autovac_count() {
	psql_q "SELECT coalesce(sum(autovacuum_count + autoanalyze_count), 0) FROM pg_stat_user_tables"
}

# ------------------------------------------------------------ measurements

# one measured run; one JSON line in RESULTS; prints messages_per_s p99_ms
run_once() { # PHASE MODE RUN
	local before r mps p99 av0 av1
	before=$(entries_count)
	av0=$(autovac_count)
	if [[ $2 == single ]]; then
		r=$(lg --label "growth_single_$1" --connections 64 --duration "$DURATION" \
			--presign $((DURATION * 6000 + 64)))
	else
		r=$(lg --label "growth_batch_$1" --batch 1000 --connections 4 --duration "$DURATION" \
			--presign $((DURATION * 8000 + 4000)))
	fi
	[[ -n $r ]] || die "loadgen gave no summary (see $DIR/loadgen.log)"
	av1=$(autovac_count)
	mps=$(j .messages_per_s "$r")
	p99=$(j .latency_ms.p99 "$r")
	jq -c -n --arg stamp "$STAMP" --arg bench "growth_$2" --arg phase "$1" --argjson run "$3" \
		--argjson before "$before" --argjson mps "$mps" --argjson ok "$(j .ok_messages_per_s "$r")" \
		--argjson p99 "$p99" --argjson lg "$r" --argjson av "$((av1 - av0))" \
		'{stamp:$stamp, bench:$bench, phase:$phase, run:$run, entries_before:$before,
		  messages_per_s:$mps, ok_messages_per_s:$ok, p99_ms:$p99, autovacuum_runs:$av,
		  loadgen:$lg}' >>"$RESULTS"
	say "$1 $2 run $3: $before entries before, $mps messages/s, p99 $p99 ms, $((av1 - av0)) autovacuum/analyze runs"
	echo "$mps $p99 $before"
}

# the run of median messages/s of lines "messages_per_s p99_ms entries_before"
median_run() {
	sort -n -k1,1 | sed -n "$(((REPEAT + 1) / 2))p"
}

# REPEAT x (single, batch), alternating; sets <PREFIX>_single and <PREFIX>_batch
measure_phase() { # PHASE PREFIX
	local i single='' batch='' line
	for ((i = 1; i <= REPEAT; i++)); do
		line=$(run_once "$1" single "$i")
		single+="$line"$'\n'
		line=$(run_once "$1" batch "$i")
		batch+="$line"$'\n'
	done
	printf -v "${2}_single" '%s' "$(printf '%s' "$single" | median_run)"
	printf -v "${2}_batch" '%s' "$(printf '%s' "$batch" | median_run)"
}

warm_up() {
	((WARMUP > 0)) || return 0
	lg --label growth_warmup --connections 64 --duration "$WARMUP" \
		--presign $((WARMUP * 6000 + 64)) >/dev/null
}

# ------------------------------------------------------------ bulk load

# one transaction: issues N = LO..HI (entry and lot ids from the sequences),
# written row for row as post_sets() (sql/005) writes an issue
bulk_chunk_sql() {
	cat <<-'SQL'
	SET temp_buffers = '512MB';
	SET work_mem = '256MB';
	BEGIN;
	SET LOCAL synchronous_commit = off;
	SELECT period_for(now()) AS period, lot_expires_at(now()) AS exp,
		(SELECT kid FROM receipt_keys WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1) AS rkid
	\gset
	CREATE TEMP TABLE bulk_rows ON COMMIT DROP AS
	WITH g AS MATERIALIZED (
		SELECT n, nextval('entries_id_seq') AS e, nextval('lots_id_seq') AS lot,
			(:'partners'::text[])[1 + n % cardinality(:'partners'::text[])] AS partner,
			'B' || (n % :members) AS member,
			(100 + (n * 7919) % 900)::bigint AS points
		FROM generate_series(:lo::bigint, :hi::bigint) n
	), p AS (
		SELECT x.p, (rate_card_at(x.p, now())).issue_price_micros AS ip,
			(SELECT k.kid FROM signing_keys k WHERE k.partner_id = x.p
				ORDER BY k.created_at DESC LIMIT 1) AS kid
		FROM unnest(:'partners'::text[]) x(p)
	)
	SELECT g.e, g.lot, g.partner, g.member, g.points, p.ip, p.kid, ma.id AS macct, ia.id AS iacct,
		ma.credits_posted - ma.debits_posted
			+ sum(g.points) OVER (PARTITION BY g.member ORDER BY g.e) AS balance
	FROM g JOIN p ON p.p = g.partner
	JOIN accounts ma ON ma.kind = 'member' AND ma.member = g.member
	JOIN accounts ia ON ia.name = 'issued:' || g.partner;
	ANALYZE bulk_rows;
	-- every row found its member and issued accounts
	SELECT count(*) = :hi - :lo + 1 AS rows_ok FROM bulk_rows
	\gset
	\if :rows_ok
	\else
	\warn 'bulk: rows without a member or issued account'
	SELECT 1 / 0;
	\endif
	INSERT INTO messages (partner_id, msg_id, entry_id, jws, sha256, kid, type, member, points,
		balance, accepted_at, period)
	SELECT partner, 'bulk-' || lpad(e::text, 12, '0'), e,
		rpad('bulk.' || e || '.', :jws_len, md5(e::text)),
		md5(e::text) || md5(partner || e), kid, 'issue', member, points, balance, now(), :'period'
	FROM bulk_rows ORDER BY e;
	INSERT INTO entries (id, kind, accepted_at, period, partner_id, msg_id, type, member, points,
		issue_price_micros)
	SELECT e, 'message', now(), :'period', partner, 'bulk-' || lpad(e::text, 12, '0'), 'issue',
		member, points, ip
	FROM bulk_rows ORDER BY e;
	INSERT INTO transfers (entry_id, debit_account, credit_account, points)
	SELECT e, iacct, macct, points FROM bulk_rows ORDER BY e;
	INSERT INTO lots (id, account_id, member, partner_id, entry_id, points, remaining,
		issued_at, expires_at)
	SELECT lot, macct, member, partner, e, points, points, now(), :'exp'
	FROM bulk_rows ORDER BY e;
	INSERT INTO lot_moves (entry_id, seq, lot_id, points)
	SELECT e, 1, lot, points FROM bulk_rows ORDER BY e;
	INSERT INTO receipts (entry_id, kid, receipt)
	SELECT e, :'rkid', rpad('bulk-receipt.' || e || '.', :receipt_len, md5(partner || e))
	FROM bulk_rows ORDER BY e;
	UPDATE accounts a SET credits_posted = a.credits_posted + s.pts
	FROM (SELECT macct, sum(points) AS pts FROM bulk_rows GROUP BY macct) s
	WHERE a.id = s.macct;
	COMMIT;
	SQL
}

# the member accounts B0..B(MEMBERS-1) and the issued:<partner> accounts
bulk_accounts() {
	local p
	psql_q "INSERT INTO accounts (name, kind, member)
		SELECT 'member:B' || i, 'member', 'B' || i FROM generate_series(0, $MEMBERS - 1) i
		ON CONFLICT DO NOTHING" >/dev/null
	for p in ${PARTNERS//,/ }; do
		psql_q "SELECT ledger_partner_account('issued', '$p')" >/dev/null
	done
}

# text lengths of the real rows (the small phase's), so that the tables
# have the size pointsd would give them
bulk_text_lengths() { # sets JWS_LEN RECEIPT_LEN
	JWS_LEN=32
	RECEIPT_LEN=32
	[[ $PAD == 1 ]] || return 0
	JWS_LEN=$(psql_q "SELECT coalesce(round(avg(length(jws))), 32) FROM messages")
	RECEIPT_LEN=$(psql_q "SELECT coalesce(round(avg(length(receipt))), 32) FROM receipts")
}

table_sizes_json() {
	psql_q "SELECT json_object_agg(t, pg_total_relation_size(t::regclass)) FROM
		unnest('{entries,transfers,lots,lot_moves,messages,receipts,accounts}'::text[]) t"
}

# about 1.7 kB of tables and indexes per entry with real text lengths, and
# as much WAL again during the load (max_wal_size 16GB): warn, do not refuse
disk_check() { # ROWS
	local need_kb avail_kb
	need_kb=$(($1 * (JWS_LEN + RECEIPT_LEN + 900) * 2 / 1024))
	avail_kb=$(df -Pk "$DIR" | awk 'NR == 2 { print $4 }')
	((avail_kb >= need_kb)) ||
		say "warning: $((avail_kb / 1048576)) GiB free under $DIR, the load may need about $((need_kb / 1048576)) GiB"
}

# fresh statistics and a checkpoint before a phase is measured
prepare_phase() {
	psql_q "VACUUM (ANALYZE) entries, transfers, lots, lot_moves, messages, receipts, accounts, periods" >/dev/null
	psql_q "CHECKPOINT" >/dev/null
}

bulk_load() { # sets LOAD_JSON
	local have n lo hi t0 t1 tv secs vsecs chunk_t0 done_n=0 sizes
	have=$(entries_count)
	n=$((BULK_ENTRIES - have))
	if ((n <= 0)); then
		say "the ledger already holds $have entries: no bulk load (a control run: same size twice)"
		prepare_phase
		LOAD_JSON=$(jq -c -n --argjson have "$have" --argjson sizes "$(table_sizes_json)" \
			'{rows:0, load_s:0, rows_per_s:null, vacuum_analyze_checkpoint_s:null,
			  entries_after:$have, table_bytes:$sizes, total_bytes:([$sizes[]] | add)}')
		return 0
	fi
	bulk_accounts
	bulk_text_lengths
	disk_check "$n"
	say "bulk load: $n issues in chunks of $CHUNK (jws $JWS_LEN, receipt $RECEIPT_LEN chars)"
	# fewer forced checkpoints during the load; reset before measuring
	psql_q "ALTER SYSTEM SET max_wal_size = '16GB'" >/dev/null
	psql_q "SELECT pg_reload_conf()" >/dev/null
	bulk_chunk_sql >"$DIR/bulk_chunk.sql"
	t0=$(date +%s.%N)
	for ((lo = 1; lo <= n; lo += CHUNK)); do
		hi=$((lo + CHUNK - 1))
		((hi <= n)) || hi=$n
		chunk_t0=$(date +%s.%N)
		"$PSQL" -X -q -v ON_ERROR_STOP=1 -v lo="$lo" -v hi="$hi" -v members="$MEMBERS" \
			-v partners="{$PARTNERS}" -v jws_len="$JWS_LEN" -v receipt_len="$RECEIPT_LEN" \
			"$ADMIN" -f "$DIR/bulk_chunk.sql" >>"$DIR/bulk.log" 2>&1 ||
			{ tail -n 5 "$DIR/bulk.log" >&2; die "bulk load failed at rows $lo..$hi"; }
		done_n=$hi
		say "bulk: $done_n / $n rows ($(awk -v a="$chunk_t0" -v b="$(date +%s.%N)" -v c="$((hi - lo + 1))" \
			'BEGIN { printf "%.0f rows/s", c / (b - a) }') in this chunk, $(awk -v a="$t0" \
			-v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }') s so far)"
	done
	t1=$(date +%s.%N)
	say "bulk: VACUUM ANALYZE, CHECKPOINT"
	prepare_phase
	psql_q "ALTER SYSTEM RESET max_wal_size" >/dev/null
	psql_q "SELECT pg_reload_conf()" >/dev/null
	tv=$(date +%s.%N)
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
	vsecs=$(awk -v a="$t1" -v b="$tv" 'BEGIN { printf "%.1f", b - a }')
	sizes=$(table_sizes_json)
	LOAD_JSON=$(jq -c -n --argjson rows "$n" --argjson secs "$secs" --argjson vsecs "$vsecs" \
		--argjson after "$(entries_count)" --argjson sizes "$sizes" \
		--argjson jl "$JWS_LEN" --argjson rl "$RECEIPT_LEN" --argjson chunk "$CHUNK" \
		'{rows:$rows, load_s:$secs, rows_per_s:(if $secs > 0 then ($rows / $secs | floor) else null end),
		  vacuum_analyze_checkpoint_s:$vsecs, entries_after:$after, chunk:$chunk,
		  jws_chars:$jl, receipt_chars:$rl, table_bytes:$sizes,
		  total_bytes:([$sizes[]] | add)}')
	say "bulk: $n rows in $secs s ($(j .rows_per_s "$LOAD_JSON") rows/s), vacuum analyze + checkpoint $vsecs s"
	jq -c -n --arg stamp "$STAMP" --argjson l "$LOAD_JSON" '{stamp:$stamp, bench:"growth_bulk_load"} + $l' >>"$RESULTS"
}

# ------------------------------------------------------------ reconcile

run_reconcile() { # sets RECONCILE_TEXT
	local t0 st=0 secs
	t0=$SECONDS
	"$CTL" --db "$ADMIN" reconcile >"$DIR/reconcile.txt" 2>&1 || st=$?
	secs=$((SECONDS - t0))
	RECONCILE_TEXT="pointsctl reconcile: exit $st in $secs s ($(tail -n 1 "$DIR/reconcile.txt"))"
	say "$RECONCILE_TEXT"
	[[ $st == 0 ]] || sed 's/^/  /' "$DIR/reconcile.txt" | head -n 30 >&2
	jq -c -n --arg stamp "$STAMP" --argjson st "$st" --argjson secs "$secs" \
		--argjson entries "$(entries_count)" --arg out "$(cat "$DIR/reconcile.txt")" \
		'{stamp:$stamp, bench:"growth_reconcile", exit:$st, seconds:$secs, entries:$entries, output:$out}' >>"$RESULTS"
}

# ------------------------------------------------------------ main

ratio_row() { # MODE SMALL BIG
	local s_mps s_p99 s_n b_mps b_p99 b_n ratio pass
	read -r s_mps s_p99 s_n <<<"$2"
	read -r b_mps b_p99 b_n <<<"$3"
	ratio=$(awk -v a="$b_mps" -v b="$s_mps" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
	pass=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.8 ? "true" : "false") }')
	jq -c -n --arg stamp "$STAMP" --arg bench "growth_$1_ratio" --argjson ratio "$ratio" \
		--argjson pass "$pass" --argjson sm "$s_mps" --argjson sp "$s_p99" --argjson sn "$s_n" \
		--argjson bm "$b_mps" --argjson bp "$b_p99" --argjson bn "$b_n" \
		'{stamp:$stamp, bench:$bench, ratio:$ratio, target:"ratio >= 0.80", pass:$pass,
		  small:{entries_before:$sn, messages_per_s:$sm, p99_ms:$sp},
		  bulk:{entries_before:$bn, messages_per_s:$bm, p99_ms:$bp}}' >>"$RESULTS"
	printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$s_n" "$s_mps" "$s_p99" \
		"$b_n" "$b_mps" "$b_p99" "$ratio" "$([[ $pass == true ]] && echo PASS || echo '**FAIL**')"
}

main() {
	local t0=$SECONDS
	small_single='' small_batch='' big_single='' big_batch=''
	RECONCILE_TEXT=''
	say "stack in $DIR (pg $PGPORT, tls $TLSPORT); results $RESULTS"
	"$ROOT/scripts/devstack.sh" setup "$DIR" "$PGPORT" "$TLSPORT" "$METRICSPORT" "$ROOT/$BUILD" >"$DIR/setup.log" 2>&1 ||
		{ tail -n 20 "$DIR/setup.log" >&2; die "stack setup failed"; }
	start_pointsd

	say "small: posting $SMALL_ENTRIES issues through pointsd"
	# issues only, so that the members have points to redeem
	lg --label growth_prefill --mix 100,0 --connections 64 --count "$SMALL_ENTRIES" \
		--presign "$SMALL_ENTRIES" >/dev/null
	# the same preparation as the bulk phase: fresh statistics, then a new
	# pointsd (its sessions keep the plans made with the statistics of then)
	stop_pointsd
	prepare_phase
	start_pointsd
	warm_up
	measure_phase small small

	stop_pointsd
	bulk_load
	start_pointsd
	warm_up
	measure_phase bulk big
	stop_pointsd

	[[ $RECONCILE != 1 ]] || run_reconcile

	echo "## pointsd cost growth $STAMP"
	echo
	echo "machine: $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo);" \
		"load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "each figure: median of $REPEAT run(s) of $DURATION s; single = 64 connections closed loop," \
		"batch = 4 connections x 1,000 lines; messages/s = all answered messages"
	echo "bulk load: $(j '"\(.rows) issues in \(.load_s) s (\(.rows_per_s // "-") rows/s), vacuum analyze + checkpoint \(.vacuum_analyze_checkpoint_s // "-") s; tables now \(.total_bytes / 1048576 | floor) MiB"' "$LOAD_JSON")"
	echo
	echo '| mode | entries before (small) | msg/s | p99 ms | entries before (bulk) | msg/s | p99 ms | ratio bulk/small | falls <= 20% |'
	echo '|---|---|---|---|---|---|---|---|---|'
	ratio_row single "$small_single" "$big_single"
	ratio_row batch "$small_batch" "$big_batch"
	echo
	[[ -z $RECONCILE_TEXT ]] || { echo "$RECONCILE_TEXT"; echo; }
	echo "results: ${RESULTS#"$ROOT"/}; $((SECONDS - t0)) s"
}

main "$@"
