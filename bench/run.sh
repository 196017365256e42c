#!/bin/bash
# run.sh - the benchmark matrix of docs/performance.md on a throwaway stack
# (own PostgreSQL cluster, certificates, partners acme and globex, pointsd):
# the ceiling V measured in the same run, then batch, single-message, baseline,
# open loop, 1,024 connections, cost growth, WAL flushes per message,
# handshakes, 10,000 idle connections. Loopback only; every step is bounded
# in time. Results: bench/results/<stamp>.jsonl (one file per run) and a markdown
# summary on stdout.
#
#   bench/run.sh              the whole matrix (about 6 minutes on 2 cores)
#   BENCH_QUICK=1 bench/run.sh    shorter steps (smoke test of the script)
#   BENCH_PERF=1 bench/run.sh     also perf profiles of pointsd and the writer backend
#   BENCH_KEEP=1 bench/run.sh     keep the stack directory for inspection
#   BENCH_STEPS="batch single" bench/run.sh   only these steps (of batch single
#                             baseline open open1024 growth handshakes idle; open,
#                             open1024 and baseline need single in the same run)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
cd "$ROOT"
BUILD=${BUILD:-build}
LG=$ROOT/$BUILD/bench/loadgen
PGPORT=${BENCH_PG_PORT:-56050}
TLSPORT=${BENCH_TLS_PORT:-18950}
METRICSPORT=${BENCH_METRICS_PORT:-18951}
QUICK=${BENCH_QUICK:-0}
DIR=$(mktemp -d /tmp/ptsbench.XXXXXX)
RESULTS_DIR=$ROOT/bench/results
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
RESULTS=${BENCH_RESULTS:-$RESULTS_DIR/$STAMP.jsonl}
SUMMARY=$DIR/summary.md
PD_PID=''

die() { echo "bench: $*" >&2; exit 1; }
say() { echo "bench: $*" >&2; }

# step length in seconds: full or quick
dur() { if [[ $QUICK == 1 ]]; then echo "$2"; else echo "$1"; fi; }

cleanup() {
	stop_pointsd || true
	"$ROOT/scripts/pg.sh" stop "$DIR/pg" >/dev/null 2>&1 || true
	if [[ ${BENCH_KEEP:-0} == 1 ]]; then
		say "kept $DIR"
	else
		rm -rf "$DIR"
	fi
}
trap cleanup EXIT

[[ -x $LG && -x $ROOT/$BUILD/pointsd && -x $ROOT/$BUILD/pointsctl ]] ||
	die "build first: make all $BUILD/bench/loadgen"
command -v jq >/dev/null || die "jq is missing (scripts/deps.sh)"
# 10,000 idle connections need more descriptors than the usual 1024
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
mkdir -p "$RESULTS_DIR"

# shellcheck source=bench/stack.sh
. "$ROOT/bench/stack.sh"

psql_q() {
	"$(scripts/pg.sh bindir)/psql" -X -A -t -h "$DIR/pg" -p "$PGPORT" -U postgres -d points -c "$1"
}

# loadgen with the stack's partners; its JSON summary on stdout
lg() {
	timeout 900 "$LG" --port "$TLSPORT" --certs "$DIR/certs" --partners acme,globex "$@" 2>>"$DIR/loadgen.log"
}

V=0
MACHINE=''
# one result line: the bench name, its figure, the target, the machine
record() { # NAME FIGURE TARGET_TEXT PASS(true/false/null) LOADGEN_JSON [EXTRA_JSON]
	local ratio=null
	[[ $1 != *_per_s ]] || ratio=$(jq -n --argjson f "$2" --argjson v "$V" 'if $v > 0 then ($f / $v * 1000 | round) / 1000 else null end')
	jq -c -n --arg name "$1" --argjson figure "$2" --arg target "$3" --argjson pass "$4" \
		--argjson ratio "$ratio" --argjson v "$V" --arg stamp "$STAMP" \
		--argjson machine "$MACHINE" --argjson run "${5:-null}" --argjson extra "${6:-null}" \
		'{stamp:$stamp, bench:$name, figure:$figure, ratio_to_v:$ratio, target:$target,
		  pass:$pass, ceiling_v:$v, machine:$machine, loadgen:$run, extra:$extra}' >>"$RESULTS"
	printf '| %s | %s | %s | %s | %s |\n' "$1" "$2" "$ratio" "$3" \
		"$(case $4 in true) echo met ;; false) echo '**not met**' ;; *) echo - ;; esac)" >>"$SUMMARY"
}

pass_if() { # AWK_EXPR -> true/false
	awk "BEGIN { r = ($1); if (r) print \"true\"; else print \"false\" }"
}

measure_ceiling() {
	local per_core cpu mem
	per_core=$(openssl speed -seconds 3 ed25519 2>/dev/null | awk '/Ed25519/ { print $NF }' | tail -n 1)
	[[ -n $per_core ]] || die "openssl speed ed25519 gave no figure"
	V=$(awk -v n="$(nproc)" -v p="$per_core" 'BEGIN { printf "%d", (n * p) }')
	cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
	mem=$(awk '/^MemTotal/ { print $2 }' /proc/meminfo)
	MACHINE=$(jq -c -n --arg cpu "$cpu" --argjson nproc "$(nproc)" --argjson mem_kb "$mem" \
		--argjson verify "$per_core" --arg kernel "$(uname -r)" \
		'{nproc:$nproc, cpu:$cpu, mem_kb:$mem_kb, kernel:$kernel, ed25519_verify_per_core_s:$verify}')
	say "ceiling V = $(nproc) x $per_core verify/s = $V messages/s"
}

wal_syncs() {
	psql_q "SELECT wal_sync || ' ' || wal_write || ' ' || wal_records FROM pg_stat_wal"
}

# perf profiles of pointsd and of the writer's backend during a load, if asked
PERF_PIDS=()
profile_start() {
	local wpid
	[[ ${BENCH_PERF:-0} == 1 ]] || return 0
	wpid=$(psql_q "SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'pointsd-writer%' ORDER BY pid LIMIT 1")
	(sleep 2 && perf record -e cpu-clock -F 499 -g -p "$PD_PID" -o "$DIR/perf.pointsd" -- sleep 5 >/dev/null 2>&1) &
	PERF_PIDS+=($!)
	if [[ -n $wpid ]]; then
		(sleep 2 && perf record -e cpu-clock -F 499 -g -p "$wpid" -o "$DIR/perf.writer" -- sleep 5 >/dev/null 2>&1) &
		PERF_PIDS+=($!)
	fi
}

profile_report() {
	local f
	[[ ${BENCH_PERF:-0} == 1 ]] || return 0
	wait "${PERF_PIDS[@]}" || true
	PERF_PIDS=()
	for f in pointsd writer; do
		[[ -f $DIR/perf.$f ]] || continue
		echo "### perf: $f (top symbols, self time)"
		echo '```'
		perf report -i "$DIR/perf.$f" --stdio --no-children --sort dso,symbol 2>/dev/null |
			grep -E '^ +[0-9.]+%' | head -n 25 || true
		echo '--- per thread (pid:tid, share of samples)'
		perf report -i "$DIR/perf.$f" --stdio --no-children -g none --sort pid 2>/dev/null |
			grep -E '^ +[0-9.]+%' | head -n 8 || true
		echo '--- inclusive (children)'
		perf report -i "$DIR/perf.$f" --stdio --children --sort symbol 2>/dev/null |
			grep -E '^ +[0-9.]+%' | grep -v ' 0x0000' | head -n 25 || true
		echo '```'
	done
}

j() { jq -r "$1" <<<"$2"; }

bench_batch() {
	local d r f
	d=$(dur 15 5)
	r=$(lg --label batch --batch 1000 --connections 4 --duration "$d" --presign $((d * 8000 + 4000)))
	f=$(j .ok_messages_per_s "$r")
	record batch_msgs_per_s "$f" ">= 0.30 V" "$(pass_if "$f >= 0.30 * $V")" "$r"
}

bench_single() { # sets SINGLE_RPS
	local d r f w0 w1 msgs syncs per
	d=$(dur 15 5)
	w0=$(wal_syncs)
	profile_start
	r=$(lg --label single_group_commit --connections 64 --duration "$d" --presign $((d * 6000 + 64)))
	w1=$(wal_syncs)
	profile_report >>"$DIR/profile.md"
	f=$(j .ok_messages_per_s "$r")
	SINGLE_RPS=$(j .requests_per_s "$r")
	record single_msgs_per_s "$f" ">= 0.20 V" "$(pass_if "$f >= 0.20 * $V")" "$r"
	msgs=$(j .posted "$r")
	syncs=$(($(cut -d' ' -f1 <<<"$w1") - $(cut -d' ' -f1 <<<"$w0")))
	per=$(awk -v m="$msgs" -v s="$syncs" 'BEGIN { printf "%.1f", (s > 0 ? m / s : 0) }')
	record messages_per_wal_sync "$per" ">= 20" "$(pass_if "$per >= 20")" null \
		"{\"wal_before\":\"$w0\",\"wal_after\":\"$w1\",\"posted\":$msgs,\"wal_syncs\":$syncs}"
}

bench_baseline() {
	local d r f w0 w1 syncs
	d=$(dur 10 4)
	stop_pointsd
	start_pointsd --commit-max-messages=1
	w0=$(wal_syncs)
	r=$(lg --label baseline_commit_max_1 --connections 64 --duration "$d" --presign $((d * 3000 + 64)))
	w1=$(wal_syncs)
	stop_pointsd
	start_pointsd
	f=$(j .ok_messages_per_s "$r")
	BASELINE=$f
	syncs=$(($(cut -d' ' -f1 <<<"$w1") - $(cut -d' ' -f1 <<<"$w0")))
	record baseline_msgs_per_s "$f" "(reference)" null "$r" "{\"wal_syncs\":$syncs}"
	f=$(awk -v a="$SINGLE_MSGS" -v b="$BASELINE" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
	record group_commit_speedup "$f" ">= 5x baseline" "$(pass_if "$f >= 5")" null
}

# the server's side of a step: pointsd's metrics and pg_stat_wal, before and
# after, as the means over the step (milliseconds; group in messages)
server_snapshot() {
	curl -s "http://127.0.0.1:$METRICSPORT/metrics" |
		awk '/^pointsd_(queue_wait|posting|commit)_seconds_(sum|count) |^pointsd_group_messages_(sum|count) / { print $1, $2 }'
	psql_q "SELECT 'wal_sync ' || wal_sync || E'\nwal_sync_ms ' || wal_sync_time FROM pg_stat_wal"
}

server_means() { # BEFORE AFTER -> JSON
	printf '%s\n--\n%s\n' "$1" "$2" | awk '
		$1 == "--" { after = 1; next }
		{ if (after) b[$1] = $2 - a[$1]; else a[$1] = $2 }
		function mean(s, c, k) { return b[c] > 0 ? sprintf("%.2f", k * b[s] / b[c]) : "null" }
		END {
			printf "{\"queue_wait_ms\":%s,\"posting_ms\":%s,\"commit_ms\":%s,\"group_messages\":%s,\"wal_sync_ms\":%s}\n",
				mean("pointsd_queue_wait_seconds_sum", "pointsd_queue_wait_seconds_count", 1000),
				mean("pointsd_posting_seconds_sum", "pointsd_posting_seconds_count", 1000),
				mean("pointsd_commit_seconds_sum", "pointsd_commit_seconds_count", 1000),
				mean("pointsd_group_messages_sum", "pointsd_group_messages_count", 1),
				mean("wal_sync_ms", "wal_sync", 1)
		}'
}

bench_open() { # CONNS LABEL P99_TARGET_MS
	local d rate r p50 p99 errs pass s0 s1 srv
	d=$(dur 15 5)
	rate=$(awk -v r="$SINGLE_RPS" 'BEGIN { printf "%d", (r * 0.7 < 1 ? 1 : r * 0.7) }')
	s0=$(server_snapshot)
	r=$(lg --label "$2" --connections "$1" --rate "$rate" --duration "$d" --connect-parallel 128)
	s1=$(server_snapshot)
	srv=$(server_means "$s0" "$s1")
	say "$2: server means $srv"
	p50=$(j .latency_ms.p50 "$r")
	p99=$(j .latency_ms.p99 "$r")
	errs=$(j '[.codes[]] | add // 0 | . + 0' "$r")
	errs=$((errs + $(j .transport_errors "$r")))
	if [[ $1 -le 64 ]]; then
		record "${2}_p50_ms" "$p50" "<= 3 ms at $rate req/s" "$(pass_if "$p50 <= 3")" "$r" "$srv"
		record "${2}_p99_ms" "$p99" "<= 10 ms" "$(pass_if "$p99 <= 10")" null
	else
		pass=$(pass_if "$p99 <= 50 && $errs == 0")
		record "${2}_p99_ms" "$p99" "<= 50 ms, 0 errors ($errs) at $rate req/s" "$pass" "$r" "$srv"
	fi
}

bench_growth() {
	local c d r
	d=$(dur 8 3)
	for c in 1 16 64 256 1024; do
		r=$(lg --label "growth_$c" --connections "$c" --duration "$d" --connect-parallel 128 \
			--presign $((d * 5000 + c)))
		record "growth_${c}_conns_msgs_per_s" "$(j .ok_messages_per_s "$r")" \
			"p99 $(j .latency_ms.p99 "$r") ms" null "$r"
	done
}

# the machine's background load drifts over seconds (a VM, autovacuum after
# the load steps): loadgen and s_time alternate in 3 rounds and the ratio is
# that of the medians
s_time_rate() { # SECONDS: openssl s_time -new with acme's certificate, connections/s
	local st n secs
	st=$(timeout 60 openssl s_time -connect "127.0.0.1:$TLSPORT" -new -time "$1" \
		-cert "$DIR/certs/partners/acme/client.crt" -key "$DIR/certs/partners/acme/client.key" \
		-CAfile "$DIR/certs/ca.crt" 2>&1 || true)
	n=$(awk '/connections in [0-9]+ real seconds/ { print $1 }' <<<"$st" | tail -n 1)
	secs=$(awk '/connections in [0-9]+ real seconds/ { print $4 }' <<<"$st" | tail -n 1)
	awk -v n="${n:-0}" -v s="${secs:-0}" 'BEGIN { printf "%.1f", (s > 0 ? n / s : 0) }'
}

median3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }

bench_handshakes() {
	local d r ours theirs f i a=() b=()
	d=$(dur 5 2)
	for i in 1 2 3; do
		r=$(lg --label handshakes --handshakes --connections 1 --duration "$d")
		a+=("$(j .handshakes_per_s "$r")")
		b+=("$(s_time_rate "$d")")
	done
	ours=$(median3 "${a[@]}")
	theirs=$(median3 "${b[@]}")
	f=$(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
	record handshakes_per_s "$ours" "(1 connection at a time; median of 3 rounds)" null "$r" \
		"{\"s_time_per_s\":$theirs,\"rounds_ours\":[$(IFS=,; echo "${a[*]}")],\"rounds_s_time\":[$(IFS=,; echo "${b[*]}")]}"
	record handshakes_vs_s_time "$f" ">= 0.8 x s_time ($theirs/s, medians of 3 alternating rounds)" \
		"$(pass_if "$f >= 0.8")" null
	r=$(lg --label handshakes_parallel --handshakes --connections 16 --duration "$d")
	record handshakes_16_parallel_per_s "$(j .handshakes_per_s "$r")" "(16 at a time)" null "$r"
}

vmrss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$PD_PID/status"; }

bench_idle() {
	local n=10000 hold busy_d rss0 rss1 idle_log i est per r_busy r_extra extra_est ok
	hold=$(dur 20 8)
	busy_d=$(dur 75 45)
	[[ $QUICK == 1 ]] && n=2000
	stop_pointsd
	start_pointsd --max-connections="$n" --idle-timeout-ms=600000
	lg --label idle_loaded_partner --connections 2 --rate 20 --duration "$busy_d" >"$DIR/busy.json" &
	local busy_pid=$!
	sleep 2
	rss0=$(vmrss_kb)
	idle_log=$DIR/idle.log
	timeout 300 "$LG" --port "$TLSPORT" --certs "$DIR/certs" --partners acme,globex --idle \
		--label idle --connections $((n - 2)) --duration "$hold" --connect-parallel 256 \
		>"$DIR/idle.json" 2>"$idle_log" &
	local idle_pid=$!
	for ((i = 0; i < 1200; i++)); do
		grep -q '"event":"ready"' "$idle_log" 2>/dev/null && break
		kill -0 "$idle_pid" 2>/dev/null || break
		sleep 0.1
	done
	sleep 1
	rss1=$(vmrss_kb)
	est=$(grep -o '"established":[0-9]*' "$idle_log" | head -n 1 | cut -d: -f2)
	r_extra=$(timeout 60 "$LG" --port "$TLSPORT" --certs "$DIR/certs" --partners acme --idle \
		--label idle_extra --connections 1 --duration-ms 500 2>/dev/null || echo null)
	extra_est=$(j .handshakes "$r_extra")
	wait "$idle_pid" || true
	wait "$busy_pid" || true
	r_busy=$(cat "$DIR/busy.json")
	per=$(awk -v a="$rss0" -v b="$rss1" -v n="${est:-0}" 'BEGIN { printf "%.1f", (n > 0 ? (b - a) / n : 0) }')
	record idle_rss_kb_per_connection "$per" "$est idle connections, RSS $rss0 -> $rss1 kB" null \
		"$(cat "$DIR/idle.json")" "{\"rss_before_kb\":$rss0,\"rss_after_kb\":$rss1,\"established\":${est:-0}}"
	ok=$(jq -r '(.ok_messages > 0) and ([.codes[]] | add // 0) == 0 and .transport_errors == 0' <<<"$r_busy")
	record idle_extra_connection_refused "$extra_est" "connection $((n + 1)) refused (0 established); loaded partner answered ($(j .ok_messages "$r_busy") ok)" \
		"$( [[ $extra_est == 0 && $ok == true ]] && echo true || echo false)" "$r_extra" \
		"{\"loaded_partner\":$r_busy}"
	stop_pointsd
	start_pointsd
}

want() { [[ -z ${BENCH_STEPS:-} || " $BENCH_STEPS " == *" $1 "* ]]; }

main() {
	local t0=$SECONDS
	say "stack in $DIR (pg $PGPORT, tls $TLSPORT)"
	"$ROOT/scripts/devstack.sh" setup "$DIR" "$PGPORT" "$TLSPORT" "$METRICSPORT" "$ROOT/$BUILD" >"$DIR/setup.log" 2>&1 ||
		{ tail -n 20 "$DIR/setup.log" >&2; die "stack setup failed"; }
	# the time of each WAL fsync, for the open-loop steps' server means
	psql_q "ALTER SYSTEM SET track_wal_io_timing = on" >/dev/null
	psql_q "SELECT pg_reload_conf()" >/dev/null
	start_pointsd
	measure_ceiling
	{
		echo "## pointsd benchmark $STAMP"
		echo
		echo "machine: $(jq -r '"\(.nproc) cores, \(.cpu), \(.mem_kb / 1048576 | floor) GiB, kernel \(.kernel)"' <<<"$MACHINE")"
		echo "ceiling V = nproc x openssl speed ed25519 verify/s = $V messages/s"
		echo
		echo "other processes on the machine at the start (CPU %, command; the cores are shared):"
		echo '```'
		ps -eo pcpu,comm --sort=-pcpu | head -n 6
		echo '```'
		echo
		echo '| bench | figure | ratio to V | target | |'
		echo '|---|---|---|---|---|'
	} >"$SUMMARY"
	! want batch || bench_batch
	if want single; then
		bench_single
		SINGLE_MSGS=$(jq -r 'select(.bench == "single_msgs_per_s" and .stamp == "'"$STAMP"'") | .figure' "$RESULTS")
		! want baseline || bench_baseline
		! want open || bench_open 64 open_loop_70pct 10
		! want open1024 || bench_open 1024 open_loop_1024_conns 50
	fi
	! want growth || bench_growth
	! want handshakes || bench_handshakes
	! want idle || bench_idle
	echo >>"$SUMMARY"
	echo "results: ${RESULTS#"$ROOT"/} (stamp $STAMP); $((SECONDS - t0)) s" >>"$SUMMARY"
	[[ ! -f $DIR/profile.md ]] || cat "$DIR/profile.md" >>"$SUMMARY"
	cat "$SUMMARY"
}

main "$@"
