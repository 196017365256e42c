#!/bin/bash
# fuzz.sh - libFuzzer targets of tests/fuzz/ (clang-14, ASan + UBSan), built
# from the project sources into build-fuzz/ (never the gcc build dir).
#
#   fuzz.sh [run] [TARGET...]   build, then fuzz each for FUZZ_SECONDS (60)  (make fuzz)
#   fuzz.sh replay [TARGET...]  build, then run each seed of tests/fuzz/corpus/TARGET
#                               once (quick; make test)
#   fuzz.sh build [TARGET...]   build only
#
# A run starts from the seeds in tests/fuzz/corpus/TARGET and keeps what it
# finds in build-fuzz/corpus/TARGET (not in the repository); a crash is
# written to build-fuzz/crashes/TARGET/ and the script fails. Add a crash
# input to tests/fuzz/corpus/TARGET once it is fixed, so replay keeps it.
# Knobs: FUZZ_SECONDS, FUZZ_CC (clang-14), FUZZ_BUILD (build-fuzz).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
cd "$ROOT" || exit 1

CC=${FUZZ_CC:-clang-14}
OUT=${FUZZ_BUILD:-build-fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-60}

ALL_TARGETS=(b64url jws message route batch decimal conf)
# the project sources the targets link (pure code: no libevent, no libpq)
SRCS=(common/b64url.c common/log.c common/errors.c common/decimal.c common/conf.c
	clearing/jws.c clearing/message.c clearing/route.c)
# shellcheck disable=SC2054 # the commas belong to one flag
SAN=(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
CFLAGS=(-std=c17 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Werror -Wshadow -I. -Icommon -Itests/fuzz)

die() { echo "fuzz: $*" >&2; exit 1; }

fuzz_build() { # TARGET...
	local pkg_cflags pkg_libs src obj objs=() t
	command -v "$CC" >/dev/null || die "$CC not found (apt-get install clang-14)"
	pkg_cflags=$(pkg-config --cflags jansson openssl) || die "pkg-config jansson openssl failed"
	pkg_libs=$(pkg-config --libs jansson openssl)
	mkdir -p "$OUT/obj"
	for src in "${SRCS[@]}"; do
		obj=$OUT/obj/$(echo "${src%.c}" | tr / _).o
		if [[ ! -f $obj || $src -nt $obj || $0 -nt $obj ]] ||
			[[ -n $(find common clearing -name '*.h' -newer "$obj" 2>/dev/null | head -n 1) ]]; then
			# shellcheck disable=SC2086
			"$CC" "${CFLAGS[@]}" $pkg_cflags "${SAN[@]}" -fsanitize=fuzzer-no-link \
				-c -o "$obj" "$src" || return 1
		fi
		objs+=("$obj")
	done
	for t in "$@"; do
		[[ -f tests/fuzz/fuzz_$t.c ]] || die "no target tests/fuzz/fuzz_$t.c"
		# shellcheck disable=SC2086
		"$CC" "${CFLAGS[@]}" $pkg_cflags "${SAN[@]}" -fsanitize=fuzzer \
			-o "$OUT/fuzz_$t" "tests/fuzz/fuzz_$t.c" "${objs[@]}" $pkg_libs || return 1
	done
}

# per-target options: inputs up to a 16 KiB message (plus framing) where it matters
fuzz_opts() { # TARGET
	local o=(-max_len=4096 -timeout=10 -rss_limit_mb=2048)
	case $1 in
	jws | route | message) o=(-max_len=20000 -timeout=10 -rss_limit_mb=2048) ;;
	esac
	[[ -f tests/fuzz/$1.dict ]] && o+=("-dict=tests/fuzz/$1.dict")
	printf '%s\n' "${o[@]}"
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

fuzz_replay() { # TARGET...: every seed once; ok/not ok per target
	local t files n failed=0
	for t in "$@"; do
		mapfile -t files < <(find "tests/fuzz/corpus/$t" -type f 2>/dev/null | sort)
		n=${#files[@]}
		if ((n == 0)); then
			echo "not ok - fuzz replay $t: no seeds in tests/fuzz/corpus/$t"
			failed=1
			continue
		fi
		if "$OUT/fuzz_$t" -runs=1 "${files[@]}" >"$OUT/replay_$t.log" 2>&1; then
			echo "ok - fuzz replay $t ($n inputs)"
		else
			echo "not ok - fuzz replay $t ($n inputs)"
			grep -E 'ERROR|runtime error|fuzz check failed|Running:' "$OUT/replay_$t.log" |
				tail -n 20 | sed 's/^/#   /'
			failed=1
		fi
	done
	return "$failed"
}

fuzz_run() { # TARGET...: FUZZ_SECONDS each
	local t failed=0 opts stats
	for t in "$@"; do
		mkdir -p "$OUT/corpus/$t" "$OUT/crashes/$t"
		mapfile -t opts < <(fuzz_opts "$t")
		echo "# fuzz_$t for ${SECONDS_EACH}s (${opts[*]})"
		if "$OUT/fuzz_$t" "${opts[@]}" -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
			-artifact_prefix="$OUT/crashes/$t/" \
			"$OUT/corpus/$t" "tests/fuzz/corpus/$t" >"$OUT/run_$t.log" 2>&1; then
			stats=$(grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb):' \
				"$OUT/run_$t.log" | sed 's/^stat:://' | tr '\n' ' ')
			echo "ok - fuzz $t ${SECONDS_EACH}s: $stats$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[^ ]+' \
				"$OUT/run_$t.log" | tail -n 1)"
		else
			echo "not ok - fuzz $t: finding in $OUT/crashes/$t/ (log $OUT/run_$t.log)"
			grep -E 'ERROR|runtime error|fuzz check failed|Test unit written' "$OUT/run_$t.log" |
				head -n 10 | sed 's/^/#   /'
			failed=1
		fi
	done
	return "$failed"
}

mode=run
case ${1:-} in
run | replay | build) mode=$1; shift ;;
esac
targets=("$@")
((${#targets[@]} > 0)) || targets=("${ALL_TARGETS[@]}")
fuzz_build "${targets[@]}" || die "build failed"
case $mode in
build) exit 0 ;;
replay) fuzz_replay "${targets[@]}" ;;
run) fuzz_run "${targets[@]}" ;;
esac
