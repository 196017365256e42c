#!/bin/bash
# test.sh - `make test`: lint, build, then every unit and integration test on
# a throwaway stack (PostgreSQL, CA, partners, pointsd) in a temporary
# directory; again under ASan+UBSan (skip with PTS_NO_ASAN=1). Always removes
# what it made, also on failure or Ctrl-C. Last line: "N passed, N failed".
# Knobs: PTS_NO_ASAN=1, PTS_TEST_TIMEOUT (s per integration script, 900),
# PTS_BUILD / PTS_BUILD_ASAN (build dirs), PTS_TESTS (a regex: only the
# integration scripts whose names match, no lint, fuzz replay or unit tests:
# for development, not a green run), PTS_TEST_PORTS (LO-HI, 20000-32000: below the kernel's ephemeral range, so that no outgoing connection holds a picked port).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
cd "$ROOT" || exit 1

TEST_TIMEOUT_S=${PTS_TEST_TIMEOUT:-900}
BUILD_DIR=${PTS_BUILD:-build}
ASAN_BUILD_DIR=${PTS_BUILD_ASAN:-build-asan}
PORT_RANGE=${PTS_TEST_PORTS:-20000-32000}
JOBS=$(nproc 2>/dev/null || echo 2)

PASSED=0
FAILED=0
STACK=
TEST_PID=
USED_PORTS=
PICKED=
BUILT_UNIT_BINS=()
export PTS_ASAN=0

# shellcheck source=../tests/integration/stack.sh
. "$ROOT/tests/integration/stack.sh"

fail() { # DESC: an infrastructure failure counts as one failed test
	echo "not ok - $1"
	FAILED=$((FAILED + 1))
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_port() { # sets PICKED to a free TCP port of PORT_RANGE on 127.0.0.1
	local p i lo=${PORT_RANGE%-*} hi=${PORT_RANGE#*-}
	for ((i = 0; i < 500; i++)); do
		p=$((lo + RANDOM % (hi - lo + 1)))
		[[ " $USED_PORTS " == *" $p "* ]] && continue
		port_in_use "$p" && continue
		USED_PORTS+=" $p"
		PICKED=$p
		return 0
	done
	return 1
}

stack_teardown() {
	[[ -n $STACK ]] || return 0
	stack_stop_pointsd >/dev/null 2>&1
	if [[ -d $STACK/pg ]]; then
		"$ROOT/scripts/pg.sh" stop "$STACK/pg" fast >/dev/null 2>&1 ||
			"$ROOT/scripts/pg.sh" stop "$STACK/pg" immediate >/dev/null 2>&1
	fi
	rm -rf "$STACK"
	STACK=
}

on_exit() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n $TEST_PID ]]; then
		kill -TERM "$TEST_PID" 2>/dev/null
		wait "$TEST_PID" 2>/dev/null
	fi
	stack_teardown
	echo "$PASSED passed, $FAILED failed"
	if ((rc == 0 && FAILED > 0)); then
		rc=1
	fi
	exit "$rc"
}
trap on_exit EXIT
trap 'echo "test.sh: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

# unit test binaries of a build directory, as the Makefile names them
unit_bins() { # BUILD
	local src
	for src in tests/unit/test_*.c; do
		[[ -f $src ]] || continue
		src=${src#tests/unit/}
		echo "$1/tests/${src%.c}"
	done
}

stack_create() { # BUILD: a fresh stack, exported to the tests as PTS_*
	local build=$1 pg_port tls_port metrics_port
	STACK=$(mktemp -d "${TMPDIR:-/tmp}/pts-test.XXXXXX") || return 1
	chmod 0755 "$STACK"
	STACK_PIDFILE=$STACK/pointsd.pid
	STACK_LOGFILE=$STACK/pointsd.log
	STACK_EXITFILE=$STACK/pointsd.exit
	pick_port && pg_port=$PICKED && pick_port && tls_port=$PICKED &&
		pick_port && metrics_port=$PICKED || return 1
	export PTS_ROOT=$ROOT PTS_STACK=$STACK PTS_CERTS=$STACK/certs
	export PTS_PGHOST=$STACK/pg PTS_PGPORT=$pg_port
	export PTS_PGBIN
	PTS_PGBIN=$("$ROOT/scripts/pg.sh" bindir) || return 1
	export PTS_DB_ADMIN="host=$STACK/pg port=$pg_port dbname=points user=postgres"
	export PTS_DB_SERVER="host=$STACK/pg port=$pg_port dbname=points user=pointsd"
	export PTS_PORT=$tls_port PTS_METRICS_PORT=$metrics_port
	export PTS_CONF=$STACK/pointsd.conf PTS_BIN
	PTS_BIN=$(cd "$build" && pwd -P) || return 1
	echo "# stack $STACK: postgres $pg_port, pointsd $tls_port, metrics $metrics_port, bin $build"
	if ! "$ROOT/scripts/devstack.sh" setup "$STACK" "$pg_port" "$tls_port" \
		"$metrics_port" "$PTS_BIN" >"$STACK/setup.log" 2>&1; then
		sed 's/^/# /' "$STACK/setup.log"
		tail -n 5 "$STACK"/pg/log/* 2>/dev/null | sed 's/^/# /'
		return 1
	fi
	stack_start_pointsd
}

run_unit() { # BUILD: the unit binaries that build() just made
	local line c f e
	"$ROOT/scripts/run-unit.sh" "${BUILT_UNIT_BINS[@]}" </dev/null >"$STACK/unit.out" 2>&1
	cat "$STACK/unit.out"
	line=$(grep -E '^unit: Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+$' "$STACK/unit.out" | tail -n 1)
	if [[ -z $line ]]; then
		fail "unit tests ($1): no summary from scripts/run-unit.sh"
		return
	fi
	read -r c f e < <(echo "$line" | sed 's/[^0-9]\+/ /g')
	PASSED=$((PASSED + c - f - e))
	FAILED=$((FAILED + f + e))
}

run_integration_one() { # SCRIPT
	local t=$1 out=$STACK/integration.out rc ok nok start=$SECONDS
	echo "# $t"
	timeout -k 10 "$TEST_TIMEOUT_S" bash "$t" </dev/null >"$out" 2>&1 &
	TEST_PID=$!
	wait "$TEST_PID"
	rc=$?
	TEST_PID=
	cat "$out"
	echo "# $t: $((SECONDS - start)) s"
	ok=$(grep -cE '^ok\b' "$out")
	nok=$(grep -cE '^not ok\b' "$out")
	PASSED=$((PASSED + ok))
	FAILED=$((FAILED + nok))
	if ((rc == 124 || rc == 137)); then
		fail "$t timed out after $TEST_TIMEOUT_S s"
	elif ((rc != 0 && nok == 0)); then
		fail "$t exited $rc"
	elif ((rc == 0 && ok + nok == 0)); then
		fail "$t ran no test"
	fi
	# the next script gets a running stack even if this one stopped a part
	if ! "$ROOT/scripts/pg.sh" status "$STACK/pg" >/dev/null 2>&1; then
		echo "# $t left PostgreSQL stopped: starting it again"
		"$ROOT/scripts/pg.sh" start "$STACK/pg" "$PTS_PGPORT" || fail "postgres restart after $t"
	fi
	if ! stack_pointsd_pid >/dev/null; then
		stack_start_pointsd || fail "pointsd restart after $t"
	fi
}

run_integration() {
	local t
	for t in tests/integration/[0-9]*.sh; do
		[[ -f $t ]] || continue
		[[ -z ${PTS_TESTS:-} || $(basename "$t") =~ $PTS_TESTS ]] || continue
		run_integration_one "$t"
	done
}

# sanitizer reports of pointsd go to its log, not to any test's output
check_pointsd_log() { # NAME
	if [[ -f $STACK_LOGFILE ]] &&
		grep -qE 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:|PTS_ASSERT|assertion failed' "$STACK_LOGFILE"; then
		grep -nE -A 20 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:' "$STACK_LOGFILE" | head -n 60 | sed 's/^/# /'
		fail "pointsd log of the $1 pass has sanitizer or assertion reports"
	fi
}

run_pass() { # NAME BUILD
	echo "# === $1 pass ($2) ==="
	# a port taken between the free-port check and the bind (another
	# program on this machine) fails the set-up: try once more on new ports
	if ! stack_create "$2"; then
		echo "# stack set-up failed: once more on other ports"
		stack_teardown
		if ! stack_create "$2"; then
			fail "stack set-up ($1 pass)"
		fi
	fi
	if [[ -n $STACK ]]; then
		[[ -n ${PTS_TESTS:-} ]] || run_unit "$2"
		run_integration
		stack_stop_pointsd || fail "pointsd did not stop on SIGTERM ($1 pass)"
		check_pointsd_log "$1"
	fi
	stack_teardown
}

build() { # make args...: builds pointsd, pointsctl and the unit test binaries
	local build_dir=$BUILD_DIR a bins
	for a in "$@"; do
		[[ $a == BUILD=* ]] && build_dir=${a#BUILD=}
	done
	mapfile -t bins < <(unit_bins "$build_dir")
	BUILT_UNIT_BINS=("${bins[@]}")
	make --no-print-directory -j"$JOBS" "$@" all "${bins[@]}"
}

if [[ -z ${PTS_TESTS:-} ]]; then
echo "# lint"
scripts/lint.sh || fail "lint (scripts/lint.sh)"

# the fuzz targets' seed corpus, each input once, under ASan+UBSan (clang-14)
echo "# fuzz corpus replay"
replay_out=$(mktemp)
scripts/fuzz.sh replay >"$replay_out" 2>&1
replay_rc=$?
cat "$replay_out"
PASSED=$((PASSED + $(grep -cE '^ok\b' "$replay_out")))
FAILED=$((FAILED + $(grep -cE '^not ok\b' "$replay_out")))
((replay_rc == 0)) || fail "fuzz corpus replay exited $replay_rc"
rm -f "$replay_out"
fi

echo "# build"
if ! build BUILD="$BUILD_DIR"; then
	fail "build"
	exit 1
fi
run_pass normal "$BUILD_DIR"

if [[ ${PTS_NO_ASAN:-0} == 1 ]]; then
	echo "# sanitizer pass skipped (PTS_NO_ASAN=1)"
else
	echo "# build with ASan+UBSan"
	if build BUILD="$ASAN_BUILD_DIR" SAN=1; then
		export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
		export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
		export CK_TIMEOUT_MULTIPLIER=${CK_TIMEOUT_MULTIPLIER:-4}
		export PTS_ASAN=1
		run_pass asan "$ASAN_BUILD_DIR"
	else
		fail "build with ASan+UBSan"
	fi
fi
