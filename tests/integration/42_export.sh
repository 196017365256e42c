#!/bin/bash
# 42_export.sh - auditor exports on a throwaway database with real
# signatures (partner keys Ed25519 and ES256, one of them revoked since,
# receipts signed with openssl here): jsonl round trip and verify-export,
# whole periods for a sub-range, csv (RFC 4180, parsed back), hledger
# (`hledger check`, balances = pointsctl reconcile), tamper detection
# (200 random byte flips, and edits that also fix the trailer), the
# memory bound on 50,000 entries (bench/export_rss.sh).
#
# Environment: PTS_DB_ADMIN (superuser conninfo), PTS_BIN (pointsctl),
# PTS_ROOT (the repository, for bench/), PTS_ASAN.
set -uo pipefail

# shellcheck source=tests/integration/sqltest.sh
. "$(dirname "$0")/sqltest.sh"
ROOT=${PTS_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
sqltest_newdb "pts_export_$$"
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }

# ------------------------------------------------------------------ keys
openssl genpkey -algorithm ed25519 -out "$TMP/acme0.key" 2>/dev/null
openssl genpkey -algorithm ed25519 -out "$TMP/acme1.key" 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TMP/globex1.key" 2>/dev/null
openssl genpkey -algorithm ed25519 -out "$TMP/receipt.key" 2>/dev/null
for k in acme0 acme1 globex1 receipt; do openssl pkey -in "$TMP/$k.key" -pubout -out "$TMP/$k.pub" 2>/dev/null; done
# the receipt key's kid: its RFC 7638 thumbprint, as pointsd computes it
RX=$(openssl pkey -pubin -in "$TMP/receipt.pub" -outform DER | tail -c 32 | b64url)
RKID=$(printf '{"crv":"Ed25519","kty":"OKP","x":"%s"}' "$RX" | openssl dgst -sha256 -binary | b64url)
q >/dev/null <<SQL
INSERT INTO partners (id, name, status) VALUES ('acme', 'Acme', 'active'), ('globex', 'Globex', 'active');
INSERT INTO receipt_keys (kid, public_pem) VALUES ('$RKID', '$(cat "$TMP/receipt.pub")');
SQL
sqltest_cards
ctl key add acme --kid acme-0 --public-key "$TMP/acme0.pub" >/dev/null &&
	ctl key add acme --kid acme-1 --public-key "$TMP/acme1.pub" >/dev/null &&
	ctl key add globex --kid globex-1 --public-key "$TMP/globex1.pub" >/dev/null ||
	not_ok "register partner keys"

# post PARTNER KID ID TYPE MEMBER POINTS [REVERSES]: a signed message through
# post_group, then its receipt signed with the receipt key
post() {
	local p=$1 kid=$2 id=$3 ty=$4 m=$5 n=$6 rev=${7:-} jws row entry bal at per sha hdr pl
	jws=$(jq -cn --arg p "$p" --arg id "$id" --arg t "$ty" --arg m "$m" --argjson n "$n" --arg r "$rev" \
		'{v:1, type:$t, partner:$p, id:$id, member:$m, points:$n} + (if $r == "" then {} else {reverses:$r} end)' |
		ctl sign --key "$TMP/${kid//-/}.key" --kid "$kid") || { not_ok "sign $id"; return 1; }
	sha=$(printf '%s' "$jws" | sha256sum | cut -c1-64)
	row=$(q -F' ' -c "SELECT outcome, entry, balance, accepted_at, period FROM post_group(ARRAY['$p'], ARRAY['$id'],
		ARRAY['$jws'], ARRAY['$sha'], ARRAY['$kid'], ARRAY[NULL::text], ARRAY['$ty'], ARRAY['$m'], ARRAY[$n::bigint],
		ARRAY[$( [[ -n $rev ]] && echo "'$rev'" || echo 'NULL::text')])")
	read -r out entry bal at per <<<"$row"
	[[ $out == posted ]] || { not_ok "post $id: $row"; return 1; }
	hdr=$(printf '{"alg":"EdDSA","kid":"%s","typ":"points-receipt+jwt"}' "$RKID" | b64url)
	pl=$(jq -cnS --arg p "$p" --arg id "$id" --arg t "$ty" --arg m "$m" --argjson n "$n" --argjson b "$bal" \
		--argjson e "$entry" --arg at "$at" --arg per "$per" --arg sha "$sha" \
		'{partner:$p, id:$id, type:$t, member:$m, points:$n, balance:$b, entry:$e, accepted_at:$at, period:$per, sha256:$sha}' |
		tr -d '\n' | b64url)
	printf '%s.%s' "$hdr" "$pl" >"$TMP/si"
	openssl pkeyutl -sign -inkey "$TMP/receipt.key" -rawin -in "$TMP/si" -out "$TMP/sig" 2>/dev/null
	q -c "INSERT INTO receipts (entry_id, kid, receipt) VALUES ($entry, '$RKID', '$hdr.$pl.$(b64url <"$TMP/sig")')"
}

# a period from the end of the last one (or an hour ago), open for an hour
new_period() {
	q -c "INSERT INTO periods (label, cycle, timezone, starts_at, ends_at)
		SELECT '$1', 'daily', 'UTC', coalesce(max(ends_at), now() - interval '1 hour'), clock_timestamp() + interval '1 hour'
		FROM periods"
}
end_now() { # LABEL: the period ends now (its entries are all posted), so it can be settled
	q -c "UPDATE periods SET ends_at = clock_timestamp() WHERE label = '$1'" >/dev/null
}

# ------------------------------------------------------------------ three periods
new_period 2026-01-01
post acme acme-0 a1 issue M1 1000
post acme acme-0 a2 issue M2 500
post globex globex-1 g1 issue M1 200
post globex globex-1 g2 redeem M1 800
post acme acme-0 a3 redeem M2 100
post acme acme-0 a4 reverse M2 50 a2
q -c "UPDATE signing_keys SET revoked_at = now() WHERE kid = 'acme-0'" >/dev/null
end_now 2026-01-01
out=$(ctl settle --period 2026-01-01 --receipt-key "$TMP/receipt.key" 2>&1) || not_ok "settle 2026-01-01" "$out"
new_period 2026-01-02
post acme acme-1 a5 issue M3 70
post globex globex-1 g3 reverse M1 300 g2
q -c "UPDATE lots SET issued_at = '2019-01-01Z', expires_at = '2020-01-01Z' WHERE entry_id =
	(SELECT entry_id FROM messages WHERE msg_id = 'a5')" >/dev/null
ctl expire --as-of 2020-01-01T00:00:00Z >/dev/null || not_ok "expire in 2026-01-02"
end_now 2026-01-02
out=$(ctl settle --period 2026-01-02 --receipt-key "$TMP/receipt.key" 2>&1) || not_ok "settle 2026-01-02" "$out"
post acme acme-1 a6 issue M4 42
OPEN=$(q -c "SELECT period FROM messages WHERE msg_id = 'a6'")
is "fixtures: 3 periods, 2 sealed, 10 entries" "$(q -c "SELECT (SELECT count(*) FROM periods) || ' ' || (SELECT count(*) FROM period_seals) || ' ' || (SELECT count(*) FROM entries)")" "3 2 10"

# ------------------------------------------------------------------ jsonl round trip
ctl export --format jsonl -o "$TMP/all.jsonl" >"$TMP/out" 2>&1
is "export jsonl -o" "$(cat "$TMP/out")" "exported 3 periods (2 sealed), 10 entries, 4 keys to $TMP/all.jsonl"
out=$(ctl verify-export "$TMP/all.jsonl" 2>&1)
is "verify-export passes" "$?" "0"
has "verify-export: partner signatures" "$out" "9 partner signatures verified"
has "verify-export: receipts" "$out" "9 verified, each against the sha256"
has "verify-export: seals and link" "$out" "3, 2 sealed: chain recomputed, seal signature and batch sha256 verified; 1 seals linked"
has "verify-export: the open period is named" "$out" "not sealed (signatures and balance checked, no chain): $OPEN"
is "jsonl: record kinds in order" "$(jq -r '.record // "entry"' "$TMP/all.jsonl" | uniq -c | awk '{print $2 $1}' | paste -sd' ')" \
	"export1 key4 period1 batch1 seal1 entry6 period1 batch1 seal1 entry3 period1 entry1 end1"
is "jsonl: the revoked key is in the file" "$(jq -r 'select(.record == "key") | .kid + ":" + .use + ":" + (.revoked_at != null | tostring)' "$TMP/all.jsonl" | paste -sd' ')" \
	"acme-0:message:true acme-1:message:false globex-1:message:false $RKID:receipt:false"
jq -c 'select(.record == null)' "$TMP/all.jsonl" >"$TMP/lines"
is "jsonl: entry lines are canonical (jq -cS gives the same bytes)" "$(jq -cS . "$TMP/lines" | cmp - "$TMP/lines" && echo same)" "same"
is "jsonl: entry lines are the lines the seals chained" "$(grep -c '"kind":"expiry"' "$TMP/lines") $(jq -r .entry "$TMP/lines" | paste -sd' ')" \
	"1 $(q -c "SELECT string_agg(id::text, ' ' ORDER BY p.starts_at, e.id) FROM entries e JOIN periods p ON p.label = e.period")"
# the seal chain of the first period recomputed with sha256sum, from the file alone
h=0000000000000000000000000000000000000000000000000000000000000000
while IFS= read -r line; do
	h=$( { printf '%s' "$h" | xxd -r -p; printf '%s\n' "$line"; } | sha256sum | cut -c1-64)
done < <(jq -c 'select(.record == null and .period == "2026-01-01")' "$TMP/all.jsonl")
is "jsonl: chain of 2026-01-01 recomputed with sha256sum = seal payload" "$h" \
	"$(jq -r 'select(.record == "seal" and .period == "2026-01-01") | .seal | split(".")[1]' "$TMP/all.jsonl" | tr '_-' '/+' | base64 -d 2>/dev/null | jq -r .chain)"

# whole periods: a range inside 2026-01-02 exports all of it
FROM=$(q -c "SELECT starts_at + (ends_at - starts_at) / 4 FROM periods WHERE label = '2026-01-02'")
TO=$(q -c "SELECT ends_at - (ends_at - starts_at) / 4 FROM periods WHERE label = '2026-01-02'")
ctl export --from "$FROM" --to "$TO" --format jsonl >"$TMP/p2.jsonl"
is "a sub-range exports the whole period" "$(jq -r 'select(.record == "period") | .period' "$TMP/p2.jsonl") $(jq -c 'select(.record == null)' "$TMP/p2.jsonl" | wc -l)" "2026-01-02 3"
out=$(ctl verify-export "$TMP/p2.jsonl" 2>&1)
is "a one-period export verifies alone" "$?" "0"
is "a one-period export carries only the keys used in it" "$(jq -r 'select(.record == "key") | .kid' "$TMP/p2.jsonl" | paste -sd' ')" "acme-1 globex-1 $RKID"
ctl export --format jsonl --from 2999-01-01 >"$TMP/none.jsonl"
is "an empty range exports no period and verifies" "$(ctl verify-export "$TMP/none.jsonl" >/dev/null 2>&1; echo $?) $(wc -l <"$TMP/none.jsonl")" "0 2"

# ------------------------------------------------------------------ csv
ctl export --format csv -o "$TMP/all.csv" >/dev/null
csvcheck=$(python3 - "$TMP/all.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline='')))
hdr = rows[0]
ent = [dict(zip(hdr, r)) for r in rows[1:] if r[0] == 'entry']
keys = [dict(zip(hdr, r)) for r in rows[1:] if r[0] == 'key']
seals = [dict(zip(hdr, r)) for r in rows[1:] if r[0] == 'seal']
assert all(len(r) == len(hdr) for r in rows), 'ragged rows'
print(len(hdr), len(ent), len(keys), len(seals), sum(int(e['transfer_points']) for e in ent),
      keys[0]['text'].startswith('-----BEGIN PUBLIC KEY-----\n'))
for e in ent:
    print(e['entry'], e['debit'], e['credit'], e['transfer_points'], e['lots'], e['jws'][:12])
PY
)
is "csv: header, rows, transfers total, multi-line PEM quoted" "$(head -n 1 <<<"$csvcheck")" \
	"19 10 4 2 $(q -c "SELECT sum(points) FROM transfers") True"
is "csv: rows equal the ledger" "$(tail -n +2 <<<"$csvcheck" | sed 's/ $//')" "$(q -F' ' -c "SELECT e.id, da.name, ca.name, t.points,
	(SELECT string_agg(m.lot_id || ':' || m.points, ';' ORDER BY m.seq) FROM lot_moves m WHERE m.entry_id = e.id),
	coalesce(left(g.jws, 12), '')
	FROM entries e JOIN periods p ON p.label = e.period JOIN transfers t ON t.entry_id = e.id
	JOIN accounts da ON da.id = t.debit_account JOIN accounts ca ON ca.id = t.credit_account
	LEFT JOIN messages g ON g.entry_id = e.id ORDER BY p.starts_at, e.id, t.id" | sed 's/ $//')"
is "csv: CRLF line ends" "$(head -n 1 "$TMP/all.csv" | od -c | grep -c '\\r  \\n')" "1"

# ------------------------------------------------------------------ hledger
ctl export --format hledger -o "$TMP/all.journal" >/dev/null
out=$(hledger -f "$TMP/all.journal" check 2>&1)
is "hledger check accepts the journal" "$?:$out" "0:"
is "hledger: one transaction per entry" "$(hledger -f "$TMP/all.journal" print | grep -c '^20')" "10"
hl=$(hledger -f "$TMP/all.journal" balance --depth 1 -N -O csv | tail -n +2 | tr -d '"' | sed 's/ PTS//' | sort | paste -sd' ')
rc=$(ctl --json reconcile | jq -r '.trial_balance[] | select(.kind != "total" and .net != "0") | .kind + "," + .net' | sort | paste -sd' ')
is "hledger balance per account kind = pointsctl reconcile" "$hl" "$rc"
is "hledger balance of a member = its account" "$(hledger -f "$TMP/all.journal" balance member:M1 -N -O csv | tail -n 1 | tr -d '"')" \
	"member:M1,$(q -c "SELECT debits_posted - credits_posted FROM accounts WHERE name = 'member:M1'") PTS"

# ------------------------------------------------------------------ tamper detection
LEN=$(stat -c %s "$TMP/all.jsonl")
caught=0
missed=""
for i in $(seq 1 200); do
	pos=$(( (RANDOM * 32768 + RANDOM) % LEN ))
	cp "$TMP/all.jsonl" "$TMP/t.jsonl"
	b=$(od -An -tu1 -j "$pos" -N1 "$TMP/t.jsonl" | tr -d ' ')
	x=$(( (RANDOM % 255) + 1 ))
	printf "$(printf '\\%03o' $(( b ^ x )))" | dd of="$TMP/t.jsonl" bs=1 seek="$pos" conv=notrunc status=none
	if ctl verify-export "$TMP/t.jsonl" >/dev/null 2>&1; then
		missed+=" $pos"
	else
		caught=$((caught + 1))
	fi
done
is "200 random one-byte changes, each caught by verify-export" "$caught${missed:+ missed at$missed}" "200"

# edits that also recompute the trailer: the seal chain, the signatures catch them
refix() { # FILE: recompute the end record's sha256
	local body
	body=$(head -n -1 "$1")
	{ printf '%s\n' "$body"; tail -n 1 "$1" | jq -cS --arg h "$(printf '%s\n' "$body" | sha256sum | cut -c1-64)" '.sha256 = $h'; } >"$1.fixed"
	mv "$1.fixed" "$1"
}
sed 's/"credit":"member:M1","debit":"issued:acme","points":1000/"credit":"member:M1","debit":"issued:acme","points":1001/' "$TMP/all.jsonl" >"$TMP/e1.jsonl"
refix "$TMP/e1.jsonl"
out=$(ctl verify-export "$TMP/e1.jsonl" 2>&1)
has "a changed transfer with a fixed trailer: caught, line named" "$?:$out" "1:pointsctl: verify-export: '$TMP/e1.jsonl': line 9: transfers do not total"
jq -c 'if .record == null and .id == "a1" then .points = 1001 | .transfers[0].points = 1001 | .lots[0].points = 1001 else . end' "$TMP/all.jsonl" >"$TMP/e2.jsonl"
refix "$TMP/e2.jsonl"
out=$(ctl verify-export "$TMP/e2.jsonl" 2>&1)
has "a consistently changed entry: the partner signature catches it" "$?:$out" "1:pointsctl: verify-export: '$TMP/e2.jsonl': line 9: partner jws: payload differs"
jq -c 'if .record == null and .kind == "expiry" then .points = 69 | .transfers[0].points = 69 | .lots[0].points = -69 else . end' "$TMP/all.jsonl" >"$TMP/e3.jsonl"
refix "$TMP/e3.jsonl"
out=$(ctl verify-export "$TMP/e3.jsonl" 2>&1)
has "a changed unsigned (expiry) entry: the seal chain catches it at the period's end" "$?:$out" "recomputed chain differs from its seal"
grep -v '"id":"a3"' "$TMP/all.jsonl" >"$TMP/e4.jsonl"
refix "$TMP/e4.jsonl"
out=$(ctl verify-export "$TMP/e4.jsonl" 2>&1)
has "a removed entry: caught" "$?:$out" "1:pointsctl: verify-export:"
head -n -3 "$TMP/all.jsonl" >"$TMP/e5.jsonl"
out=$(ctl verify-export "$TMP/e5.jsonl" 2>&1)
has "a truncated export: caught" "$?:$out" "without its end record (truncated)"
out=$(ctl verify-export "$TMP/all.csv" 2>&1)
is "verify-export refuses csv" "$?" "1"

# ------------------------------------------------------------------ memory bound (50,000 entries)
# (under ASan the allocator's quarantine of freed blocks is capped small,
# so that the peak still measures what the export keeps alive)
limit=100
asan_opts=${ASAN_OPTIONS:-}
if [[ ${PTS_ASAN:-0} == 1 ]]; then
	limit=200
	asan_opts=${asan_opts:+$asan_opts:}quarantine_size_mb=8
fi
out=$(ASAN_OPTIONS=$asan_opts PTS_BIN=$(dirname "$CTL") "$ROOT/bench/export_rss.sh" --entries 50000 --limit-mib "$limit" 2>&1)
st=$?
has "export of 50,000 entries streams under $limit MiB RSS" "$st:$out" "0:"
echo "# $(tail -n 1 <<<"$out")"

exit $FAILED
