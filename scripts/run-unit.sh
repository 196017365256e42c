#!/bin/bash
# run-unit.sh - run Check test binaries from the repository root and add up
# their "Checks: N, Failures: N, Errors: N" lines. Never hides a crash: a
# binary that fails without a Check summary counts as one more check, errored.
#   usage: scripts/run-unit.sh BIN...
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1

checks=0
failures=0
errors=0
for bin in "$@"; do
	if [[ ! -x $bin ]]; then
		echo "not ok - $bin: not built"
		checks=$((checks + 1))
		errors=$((errors + 1))
		continue
	fi
	out=$("$bin" </dev/null 2>&1)
	rc=$?
	printf '%s\n' "$out"
	summaries=$(printf '%s\n' "$out" |
		sed -n 's/.*Checks: \([0-9]*\), Failures: \([0-9]*\), Errors: \([0-9]*\).*/\1 \2 \3/p')
	if [[ -z $summaries ]]; then
		echo "not ok - $bin exited $rc without a Check summary"
		checks=$((checks + 1))
		errors=$((errors + 1))
		continue
	fi
	while read -r c f e; do
		checks=$((checks + c))
		failures=$((failures + f))
		errors=$((errors + e))
	done <<<"$summaries"
	if ((rc != 0)) && [[ $out != *"Failures: "[1-9]* && $out != *"Errors: "[1-9]* ]]; then
		echo "not ok - $bin exited $rc although Check reported no failure"
		checks=$((checks + 1))
		errors=$((errors + 1))
	fi
done
echo "unit: Checks: $checks, Failures: $failures, Errors: $errors"
((failures == 0 && errors == 0))
