#!/bin/bash
# lint.sh - the house rules a grep can check (STYLE.md rule 9): banned C
# functions anywhere in our C sources, floating point in money code.
# Exits 1 and lists every hit; prints nothing and exits 0 when clean.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1

DIRS=(common clearing partners settlement cli bench tests)
BANNED='\b(sprintf|strcpy|strcat|atoi|atol|strtok|gets|system)[[:space:]]*\('
MONEY_FILES=(common/decimal.c common/decimal.h settlement)
FLOATING='\b(float|double|strtod|strtof|strtold|atof)\b'

dirs=()
for d in "${DIRS[@]}"; do
	[[ -d $d ]] && dirs+=("$d")
done
money=()
for f in "${MONEY_FILES[@]}"; do
	[[ -e $f ]] && money+=("$f")
done

status=0
if ((${#dirs[@]} > 0)); then
	hits=$(grep -rnE --include='*.c' --include='*.h' "$BANNED" "${dirs[@]}")
	if [[ -n $hits ]]; then
		echo "lint: banned functions (use snprintf, memcpy with lengths, strtol/strtoll, strtok_r):"
		printf '%s\n' "$hits"
		status=1
	fi
fi
if ((${#money[@]} > 0)); then
	hits=$(grep -rnE --include='*.c' --include='*.h' "$FLOATING" "${money[@]}")
	if [[ -n $hits ]]; then
		echo "lint: floating point in money code (use integer micros and common/decimal):"
		printf '%s\n' "$hits"
		status=1
	fi
fi
exit "$status"
