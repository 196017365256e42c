#!/bin/bash
# 21_protocol.sh - the partner protocol against the real server (protocol.md
# §2-§5): tokens of an independent signer (openssl CLI, EdDSA and ES256) and
# of pointsctl sign, every error code with "nothing changed", the order of
# checks of §2.1, replays (also after the iat window and a key revocation),
# concurrent duplicates, receipts verified with openssl, batches.
# Ids, members, kids and partners are unique to this run.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd -P)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

T=$LIB_TMP
ID=p21-$RUN         # message id prefix
MA=ma21-$RUN        # members
MB=mb21-$RUN
ACME_KEY=$PTS_CERTS/partners/acme/signing.key
GLOBEX_KEY=$PTS_CERTS/partners/globex/signing.key

now() { date +%s; }
pl() { payload "$@"; }                        # TYPE ID MEMBER POINTS [IAT [PARTNER [EXTRA]]]
ed() { sign_ed25519 "$ACME_KEY" acme-1 "$1" "${2:-}"; } # acme-1 signs PAYLOAD [HEADER]
hdr_b64() { printf '%s' "$1" | b64url; }

# DESC STATUS CODE JWS [CERT]: refused with STATUS/CODE, no row changed
rej() { expect_reject "$1" "${5:-acme}" "$4" "$2" "$3"; }
# DESC STATUS CODE PAYLOAD: the payload signed by acme-1 (openssl), refused
rejp() { rej "$1" "$2" "$3" "$(ed "$4")"; }

# DESC JWS [CERT]: posted, 201; the reply in LAST
post_ok() {
	post_jws "${3:-acme}" "$2"
	LAST=$BODY
	if [[ $ST == 201 && $(jget .status) == posted && $(jget .replayed) == false ]]; then
		ok "$1"
	else
		not_ok "$1" "status $ST: $BODY"
	fi
}

# --- setup: keys of this run -------------------------------------------------

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/es.key" 2>/dev/null
openssl pkey -in "$T/es.key" -pubout -out "$T/es.pub" 2>/dev/null
ES_KID=acme-es-$RUN
openssl genpkey -algorithm ED25519 -out "$T/rv.key" 2>/dev/null
openssl pkey -in "$T/rv.key" -pubout -out "$T/rv.pub" 2>/dev/null
RV_KID=acme-rv-$RUN
openssl genpkey -algorithm ED25519 -out "$T/fut.key" 2>/dev/null
openssl pkey -in "$T/fut.key" -pubout -out "$T/fut.pub" 2>/dev/null
FUT_KID=acme-fut-$RUN
OLD_KID=acme-old-$RUN
if ! { ctl_sync key add acme --kid "$ES_KID" --public-key "$T/es.pub" &&
	ctl_sync key add acme --kid "$RV_KID" --public-key "$T/rv.pub" &&
	ctl_sync key add acme --kid "$FUT_KID" --public-key "$T/fut.pub" --valid-from "$(date -u -d '+1 day' +%FT%TZ)" &&
	ctl_sync key add acme --kid "$OLD_KID" --public-key "$T/fut.pub" --valid-from 2020-01-01T00:00:00Z \
		--valid-until 2021-01-01T00:00:00Z; }; then
	not_ok "register the signing keys of this run"
fi
es() { sign_es256 "$T/es.key" "$ES_KID" "$1" "${2:-}"; }

# the DER -> r||s conversion of sign_es256, on short and high-bit integers
printf '3006020101020102' | xxd -r -p >"$T/d1.der"
is "ES256 DER->raw: small r and s are left-padded to 32 bytes" "$(lib_der_to_raw_hex "$T/d1.der")" \
	"$(printf '%063d1%063d2' 0 0)"
HI=80$(printf '%062d' 0) FF=ff$(printf '%062d' 0)
printf '3046022100%s022100%s' "$HI" "$FF" | xxd -r -p >"$T/d2.der"
is "ES256 DER->raw: the sign byte 00 of high-bit integers is dropped" "$(lib_der_to_raw_hex "$T/d2.der")" "$HI$FF"

# --- accepted tokens: openssl EdDSA and ES256, pointsctl sign ----------------

J1=$(ed "$(pl issue "$ID-1" "$MA" 1000)")
post_ok "openssl EdDSA token: 201 posted" "$J1"
R1=$LAST
printf '%s' "$J1" >"$T/j1.jws"
is "first issue: balance 1000" "$(jget .balance)" 1000
for i in 1 2 3 4 5; do
	post_ok "openssl ES256 token #$i (raw r||s from DER via asn1parse): 201" "$(es "$(pl issue "$ID-es$i" "$MB" 10)")"
done
is "ES256 postings: balance of $MB 50" "$(jget .balance)" 50
J=$(pl issue "$ID-ctl" "$MB" 5 | "$PTS_BIN/pointsctl" sign --key "$ACME_KEY" --kid acme-1 --raw)
post_ok "pointsctl sign (EdDSA) token: 201" "$J"
J=$(printf '{"v":1,"type":"issue","partner":"acme","id":"%s","member":"%s","points":5}' "$ID-ctl2" "$MB" |
	"$PTS_BIN/pointsctl" sign --key "$T/es.key" --kid "$ES_KID")
post_ok "pointsctl sign (ES256, iat added) token: 201" "$J"
post_ok "header without typ: 201" "$(ed "$(pl issue "$ID-notyp" "$MB" 5)" '{"alg":"EdDSA","kid":"acme-1"}')"
post_ok "amount and currency: 201" "$(ed "$(pl issue "$ID-amt" "$MB" 5 "$(now)" acme ',"amount":"129.90","currency":"CNY"')")"
post_ok "globex issues 500 to $MA (certificate globex, kid globex-1)" \
	"$(sign_ed25519 "$GLOBEX_KEY" globex-1 "$(pl issue "$ID-globex1" "$MA" 500 "$(now)" globex)")" globex
is "balance of $MA after globex's issue: 1500" "$(jget .balance)" 1500

# --- the receipt, verified with openssl against the published JWK -----------

verify_receipt() { # DESC JWSFILE REPLY
	local desc=$1 reply=$3 rc h p s kid x keys want
	IFS=. read -r h p s <<<"$(jq -r .receipt <<<"$reply")"
	kid=$(printf '%s' "$h" | b64url_decode | jq -r .kid)
	is "$desc: receipt header alg EdDSA" "$(printf '%s' "$h" | b64url_decode | jq -r .alg)" EdDSA
	req acme GET /v1/keys
	x=$(jq -r --arg k "$kid" '.keys[] | select(.kid == $k) | .x' <<<"$BODY")
	if [[ -z $x ]]; then
		not_ok "$desc: receipt kid $kid is in GET /v1/keys" "$BODY"
		return
	fi
	{ printf '302a300506032b6570032100'; printf '%s' "$x" | b64url_decode | xxd -p | tr -d '\n'; } |
		xxd -r -p >"$T/rk.der"
	openssl pkey -pubin -inform DER -in "$T/rk.der" -out "$T/rk.pem" 2>/dev/null
	printf '%s.%s' "$h" "$p" >"$T/rk.in"
	printf '%s' "$s" | b64url_decode >"$T/rk.sig"
	openssl pkeyutl -verify -pubin -inkey "$T/rk.pem" -rawin -in "$T/rk.in" -sigfile "$T/rk.sig" >"$T/rk.out" 2>&1
	rc=$?
	if ((rc == 0)) && grep -q 'Signature Verified Successfully' "$T/rk.out"; then
		ok "$desc: receipt signature verifies with openssl (JWK $kid)"
	else
		not_ok "$desc: receipt signature verifies with openssl" "$(cat "$T/rk.out")"
	fi
	printf '%s' "$p" | b64url_decode >"$T/rk.json"
	keys=$(jq -c 'keys' "$T/rk.json")
	is "$desc: receipt payload has exactly the ten fields" "$keys" \
		'["accepted_at","balance","entry","id","member","partner","period","points","sha256","type"]'
	is "$desc: receipt sha256 = sha256sum of the posted JWS" "$(jq -r .sha256 "$T/rk.json")" \
		"$(sha256sum <"$2" | cut -c1-64)"
	want=$(jq -c '{accepted_at, balance, entry, id, member, partner, period, points, type}' <<<"$reply")
	is "$desc: receipt fields equal the reply's" \
		"$(jq -c '{accepted_at, balance, entry, id, member, partner, period, points, type}' "$T/rk.json")" "$want"
	is "$desc: entry is a JSON integer" "$(jq -r '.entry | type' <<<"$reply")" number
}
verify_receipt "issue $ID-1" "$T/j1.jws" "$R1"

# --- replays -----------------------------------------------------------------

same_reply() { # DESC REPLY-A REPLY-B (equal but for replayed)
	is "$1" "$(jq -cS 'del(.replayed)' <<<"$2")" "$(jq -cS 'del(.replayed)' <<<"$3")"
}
before=$(count_rows)
post_jws acme "$J1"
is "replay of identical bytes: 200" "$ST" 200
is "replay: replayed true" "$(jget .replayed)" true
same_reply "replay: identical receipt, entry, balance, accepted_at, period" "$R1" "$BODY"
printf '%s\n' "$J1" >"$T/j1nl.jws"
req acme POST /v1/messages "$T/j1nl.jws"
is "replay with one final LF (curl --data-binary @file): 200 replayed" "$ST $(jget .replayed)" "200 true"
is "replays changed nothing" "$(count_rows)" "$before"
req acme GET "/v1/messages/$ID-1"
is "GET /v1/messages/$ID-1: 200" "$ST" 200
is "GET /v1/messages/$ID-1: the stored reply, replayed false" "$(jq -cS . <<<"$BODY")" "$(jq -cS . <<<"$R1")"

# --- malformed_jws -------------------------------------------------------------

GOODP=$(pl issue "$ID-mal" "$MA" 1)
GOODJ=$(ed "$GOODP")
HP=${GOODJ%.*}
SIG=${GOODJ##*.}
PB=$(printf '%s' "$GOODP" | b64url)
rej "malformed_jws: one part" 400 malformed_jws "abc"
rej "malformed_jws: two parts" 400 malformed_jws "$HP"
rej "malformed_jws: four parts" 400 malformed_jws "$GOODJ.$SIG"
rej "malformed_jws: empty body" 400 malformed_jws ""
rej "malformed_jws: '=' padding in the header" 400 malformed_jws "$(hdr_b64 '{"alg":"EdDSA","kid":"acme-1"}')=.$PB.$SIG"
rej "malformed_jws: '+' in the signature (base64, not base64url)" 400 malformed_jws "$HP.${SIG:0:10}+${SIG:11}"
rej "malformed_jws: header is not JSON" 400 malformed_jws "$(hdr_b64 'hello').$PB.$SIG"
rej "malformed_jws: header is a JSON array" 400 malformed_jws "$(ed "$GOODP" '["EdDSA","acme-1"]')"
rej "malformed_jws: payload is not a JSON object" 400 malformed_jws "$(ed '[1,2,3]')"
rej "malformed_jws: payload with trailing data" 400 malformed_jws "$(ed "$GOODP x")"
rej "malformed_jws: duplicate names in the header" 400 malformed_jws \
	"$(ed "$GOODP" '{"alg":"EdDSA","kid":"acme-1","kid":"acme-1"}')"
rej "malformed_jws: duplicate names in the payload" 400 malformed_jws \
	"$(ed "$(pl issue "$ID-mal" "$MA" 1 "$(now)" acme ',"points":1')")"
for f in '"jwk":{"kty":"OKP","crv":"Ed25519","x":"AA"}' '"jku":"https://x"' '"x5c":["AA"]' '"x5u":"https://x"' '"x5t":"AA"' '"cty":"JWT"'; do
	rej "malformed_jws: header member ${f%%:*}" 400 malformed_jws "$(ed "$GOODP" "{\"alg\":\"EdDSA\",\"kid\":\"acme-1\",$f}")"
done
rej "malformed_jws: typ JWT" 400 malformed_jws "$(ed "$GOODP" '{"alg":"EdDSA","kid":"acme-1","typ":"JWT"}')"
rej "malformed_jws: no kid" 400 malformed_jws "$(ed "$GOODP" '{"alg":"EdDSA","typ":"points+jwt"}')"
rej "malformed_jws: white space before the header object" 400 malformed_jws \
	"$(ed "$GOODP" ' {"alg":"EdDSA","kid":"acme-1"}')"

# --- unsupported_alg ---------------------------------------------------------

rej "unsupported_alg: alg none, empty signature" 400 unsupported_alg \
	"$(hdr_b64 '{"alg":"none","kid":"acme-1"}').$PB."
HS_IN="$(hdr_b64 '{"alg":"HS256","kid":"acme-1"}').$PB"
HS_SIG=$(printf '%s' "$HS_IN" | openssl dgst -sha256 -hmac secret -binary | b64url)
rej "unsupported_alg: HS256 (HMAC)" 400 unsupported_alg "$HS_IN.$HS_SIG"
rej "unsupported_alg: alg missing" 400 unsupported_alg "$(ed "$GOODP" '{"kid":"acme-1"}')"
rej "unsupported_alg: alg eddsa (case)" 400 unsupported_alg "$(ed "$GOODP" '{"alg":"eddsa","kid":"acme-1"}')"
rej "unsupported_alg: alg RS256" 400 unsupported_alg "$(ed "$GOODP" '{"alg":"RS256","kid":"acme-1"}')"
rej "unsupported_alg: alg Ed25519" 400 unsupported_alg "$(ed "$GOODP" '{"alg":"Ed25519","kid":"acme-1"}')"
rej "unsupported_alg: crit present" 400 unsupported_alg \
	"$(ed "$GOODP" '{"alg":"EdDSA","kid":"acme-1","crit":["exp"],"exp":1}')"
rej "unsupported_alg: alg none, some signature bytes" 400 unsupported_alg \
	"$(hdr_b64 '{"alg":"none","kid":"acme-1"}').$PB.$SIG"
rej "order: alg none with a jwk member: unsupported_alg before malformed header" 400 unsupported_alg \
	"$(hdr_b64 '{"alg":"none","jwk":{},"kid":"acme-1"}').$PB.$SIG"

# --- invalid_message ---------------------------------------------------------

IAT=$(now)
base='"v":1,"type":"issue","partner":"acme","id":"'$ID-inv'","member":"'$MA'"'
rejp "invalid_message: points 1.0" 400 invalid_message "{$base,\"points\":1.0,\"iat\":$IAT}"
rejp "invalid_message: points \"1\"" 400 invalid_message "{$base,\"points\":\"1\",\"iat\":$IAT}"
rejp "invalid_message: points 1e2" 400 invalid_message "{$base,\"points\":1e2,\"iat\":$IAT}"
rejp "invalid_message: points 0" 400 invalid_message "{$base,\"points\":0,\"iat\":$IAT}"
rejp "invalid_message: points -1" 400 invalid_message "{$base,\"points\":-1,\"iat\":$IAT}"
rejp "invalid_message: points 1000000001" 400 invalid_message "{$base,\"points\":1000000001,\"iat\":$IAT}"
rejp "invalid_message: points 2^64 (out of range, not malformed)" 400 invalid_message \
	"{$base,\"points\":18446744073709551616,\"iat\":$IAT}"
rejp "invalid_message: iat as a string" 400 invalid_message "{$base,\"points\":1,\"iat\":\"$IAT\"}"
rejp "invalid_message: unknown field" 400 invalid_message "{$base,\"points\":1,\"iat\":$IAT,\"note\":\"x\"}"
rejp "invalid_message: missing member" 400 invalid_message \
	"{\"v\":1,\"type\":\"issue\",\"partner\":\"acme\",\"id\":\"$ID-inv\",\"points\":1,\"iat\":$IAT}"
rejp "invalid_message: missing iat" 400 invalid_message "{$base,\"points\":1}"
rejp "invalid_message: v 2" 400 invalid_message "${GOODP/\"v\":1/\"v\":2}"
rejp "invalid_message: type refund" 400 invalid_message "${GOODP/\"type\":\"issue\"/\"type\":\"refund\"}"
rejp "invalid_message: amount without currency" 400 invalid_message "{$base,\"points\":1,\"iat\":$IAT,\"amount\":\"1.00\"}"
rejp "invalid_message: currency without amount" 400 invalid_message "{$base,\"points\":1,\"iat\":$IAT,\"currency\":\"CNY\"}"
rejp "invalid_message: currency cny" 400 invalid_message \
	"{$base,\"points\":1,\"iat\":$IAT,\"amount\":\"1.00\",\"currency\":\"cny\"}"
rejp "invalid_message: amount with 7 decimals" 400 invalid_message \
	"{$base,\"points\":1,\"iat\":$IAT,\"amount\":\"1.1234567\",\"currency\":\"CNY\"}"
rejp "invalid_message: reverses on an issue" 400 invalid_message "{$base,\"points\":1,\"iat\":$IAT,\"reverses\":\"$ID-1\"}"
rejp "invalid_message: reverse without reverses" 400 invalid_message "$(pl reverse "$ID-inv" "$MA" 1)"
rejp "invalid_message: amount on a reverse" 400 invalid_message \
	"$(pl reverse "$ID-inv" "$MA" 1 "$IAT" acme ",\"reverses\":\"$ID-1\",\"amount\":\"1.00\",\"currency\":\"CNY\"")"
rejp "invalid_message: id with a space" 400 invalid_message "$(pl issue "a b" "$MA" 1)"
rejp "invalid_message: id of 65 characters" 400 invalid_message "$(pl issue "$(printf 'i%.0s' {1..65})" "$MA" 1)"
rejp "invalid_message: \\u0000 in the id" 400 invalid_message "$(pl issue 'a\u0000b' "$MA" 1)"
rejp "invalid_message: member with ':'" 400 invalid_message "$(pl issue "$ID-inv" "m:1" 1)"
rejp "invalid_message: partner is a number" 400 invalid_message \
	"{\"v\":1,\"type\":\"issue\",\"partner\":1,\"id\":\"$ID-inv\",\"member\":\"$MA\",\"points\":1,\"iat\":$IAT}"

# --- unknown_key ---------------------------------------------------------------

rej "unknown_key: unknown kid" 401 unknown_key "$(sign_ed25519 "$ACME_KEY" "nokey-$RUN" "$GOODP")"
rej "unknown_key: globex's kid from acme (signed by globex's key)" 401 unknown_key \
	"$(sign_ed25519 "$GLOBEX_KEY" globex-1 "$GOODP")"
rej "unknown_key: EdDSA header naming the ES256 kid" 401 unknown_key \
	"$(sign_ed25519 "$ACME_KEY" "$ES_KID" "$GOODP" "{\"alg\":\"EdDSA\",\"kid\":\"$ES_KID\"}")"
rej "unknown_key: ES256 header naming the Ed25519 kid acme-1" 401 unknown_key \
	"$(sign_es256 "$T/es.key" acme-1 "$GOODP")"
rej "unknown_key: key not yet valid (valid-from tomorrow)" 401 unknown_key "$(sign_ed25519 "$T/fut.key" "$FUT_KID" "$GOODP")"
rej "unknown_key: key past its valid-until" 401 unknown_key "$(sign_ed25519 "$T/fut.key" "$OLD_KID" "$GOODP")"

# a message posted with a key that is then revoked; its iat is at the edge of
# the window, so that its replay below also comes after the window
N=$(($(now) + 1))
JRV=$(sign_ed25519 "$T/rv.key" "$RV_KID" "$(pl issue "$ID-rv" "$MA" 7 $((N - 299)))")
sleep_until_second "$N"
post_ok "post with key $RV_KID (iat now-299)" "$JRV"
RRV=$LAST
JRV_AT=$(now)
ctl_sync key revoke "$RV_KID" || not_ok "pointsctl key revoke $RV_KID"
rej "unknown_key: revoked key" 401 unknown_key "$(sign_ed25519 "$T/rv.key" "$RV_KID" "$GOODP")"

# --- invalid_signature -------------------------------------------------------

rej "invalid_signature: EdDSA signature with a flipped byte" 401 invalid_signature "$(jws_flip_sig "$GOODJ")"
rej "invalid_signature: ES256 signature with a flipped byte" 401 invalid_signature "$(jws_flip_sig "$(es "$GOODP")")"
rej "invalid_signature: signature of another payload" 401 invalid_signature \
	"$HP.$(printf '%s' "$J1" | cut -d. -f3)"
rej "invalid_signature: EdDSA signature of 63 bytes" 401 invalid_signature \
	"$(jws_with_sig "$GOODJ" "$(printf '%s' "$SIG" | b64url_decode | head -c 63 | b64url)")"
ESJ=$(es "$GOODP")
rej "invalid_signature: ES256 signature in DER, not r||s" 401 invalid_signature \
	"$(jws_with_sig "$ESJ" "$(b64url <"$T/sig.der")")"
rej "invalid_signature: empty signature" 401 invalid_signature "$HP."

# --- 403s --------------------------------------------------------------------

rej "partner_mismatch: acme's certificate, payload partner globex" 403 partner_mismatch \
	"$(ed "$(pl issue "$ID-pm" "$MA" 1 "$(now)" globex)")"
rej "partner_mismatch: globex's key and certificate, payload partner acme" 403 partner_mismatch \
	"$(sign_ed25519 "$GLOBEX_KEY" globex-1 "$(pl issue "$ID-pm" "$MA" 1)")" globex
SUSP=t21s-$RUN
if new_partner "$SUSP"; then
	SJ=$(partner_jws "$SUSP" "$(pl issue "$ID-susp" "$MA" 1 "$(now)" "$SUSP")")
	ctl_sync partner suspend "$SUSP"
	rej "partner_suspended: a suspended partner's valid message" 403 partner_suspended "$SJ" "$SUSP"
	ctl_sync partner activate "$SUSP"
	post_ok "the same message after partner activate: 201" "$SJ" "$SUSP"
else
	not_ok "register partner $SUSP"
fi
STR=t21x-$RUN
if "$CA" --dir "$PTS_CERTS" issue "$STR" >/dev/null 2>&1; then
	rej "unknown_partner: valid certificate, partner not registered" 403 unknown_partner \
		"$(partner_jws "$STR" "$(pl issue "$ID-x" "$MA" 1 "$(now)" "$STR")")" "$STR"
else
	not_ok "issue a certificate for $STR"
fi

# --- stale_message, inclusive window -----------------------------------------

# signed for second N, posted early in second N: the time-critical ones first
N=$(($(now) + 1))
JP301=$(ed "$(pl issue "$ID-st2" "$MA" 1 $((N + 301)))")
JM300=$(ed "$(pl issue "$ID-st4" "$MA" 1 $((N - 300)))")
JP300=$(ed "$(pl issue "$ID-st5" "$MA" 1 $((N + 300)))")
JM301=$(ed "$(pl issue "$ID-st1" "$MA" 1 $((N - 301)))")
sleep_until_second "$N"
rej "stale_message: iat now+301" 422 stale_message "$JP301"
post_ok "iat now-300 (inclusive): 201" "$JM300"
post_ok "iat now+300 (inclusive): 201" "$JP300"
rej "stale_message: iat now-301" 422 stale_message "$JM301"
rejp "stale_message: iat 0" 422 stale_message "$(pl issue "$ID-st3" "$MA" 1 0)"
post_ok "a refused id stays free: $ID-st1 with a good iat: 201" "$(ed "$(pl issue "$ID-st1" "$MA" 1)")"

# --- ledger codes ------------------------------------------------------------

req acme GET "/v1/members/$MA"
BAL=$(jget .balance)
rejp "insufficient_points: redeem balance+1 ($((BAL + 1)))" 422 insufficient_points \
	"$(pl redeem "$ID-ins" "$MA" $((BAL + 1)))"
rejp "unknown_member: redeem for a member without an account" 404 unknown_member \
	"$(pl redeem "$ID-um" "nobody-$RUN" 1)"
req acme GET "/v1/members/nobody-$RUN"
expect_code "unknown_member: GET /v1/members/nobody-$RUN" 404 unknown_member
rejp "unknown_original: reverses an id nobody used" 404 unknown_original \
	"$(pl reverse "$ID-uo" "$MA" 1 "$(now)" acme ",\"reverses\":\"nothing-$RUN\"")"
rejp "unknown_original: reverses globex's message (another partner's)" 404 unknown_original \
	"$(pl reverse "$ID-uo" "$MA" 1 "$(now)" acme ",\"reverses\":\"$ID-globex1\"")"
rejp "over_reversal: reverse 1001 of a 1000-point issue" 422 over_reversal \
	"$(pl reverse "$ID-or" "$MA" 1001 "$(now)" acme ",\"reverses\":\"$ID-1\"")"
post_ok "reverse 200 of $ID-1: 201" "$(ed "$(pl reverse "$ID-rev1" "$MA" 200 "$(now)" acme ",\"reverses\":\"$ID-1\"")")"
rejp "invalid_message: reverse of a reverse" 400 invalid_message \
	"$(pl reverse "$ID-rr" "$MA" 1 "$(now)" acme ",\"reverses\":\"$ID-rev1\"")"
rejp "invalid_message: reverse for another member than the original's" 400 invalid_message \
	"$(pl reverse "$ID-om" "$MB" 1 "$(now)" acme ",\"reverses\":\"$ID-1\"")"
rejp "over_reversal: 801 more of $ID-1 (800 unreversed)" 422 over_reversal \
	"$(pl reverse "$ID-or" "$MA" 801 "$(now)" acme ",\"reverses\":\"$ID-1\"")"
# empty the lot of $ID-1: the member keeps points in other lots only
LOT1=$(sql "SELECT l.remaining FROM lots l JOIN messages m ON m.entry_id = l.entry_id
	WHERE m.partner_id = 'acme' AND m.msg_id = '$ID-1'")
is "lot of $ID-1 holds 800 after the reverse" "$LOT1" 800
post_ok "redeem 800 at globex (takes $ID-1's lot first: earliest expiry, lowest entry)" \
	"$(sign_ed25519 "$GLOBEX_KEY" globex-1 "$(pl redeem "$ID-gred" "$MA" 800 "$(now)" globex)")" globex
LOT1=$(sql "SELECT l.remaining FROM lots l JOIN messages m ON m.entry_id = l.entry_id
	WHERE m.partner_id = 'acme' AND m.msg_id = '$ID-1'")
is "lot of $ID-1 is empty" "$LOT1" 0
rejp "insufficient_points: reverse of an issue whose own lot is empty (other lots untouched)" 422 \
	insufficient_points "$(pl reverse "$ID-ri" "$MA" 1 "$(now)" acme ",\"reverses\":\"$ID-1\"")"

# --- order of checks (§2.1) --------------------------------------------------

N=$(now)
rej "order: bad signature + stale iat: invalid_signature" 401 invalid_signature \
	"$(jws_flip_sig "$(ed "$(pl issue "$ID-o1" "$MA" 1 $((N - 1000)))")")"
rej "order: unknown kid + bad schema: unknown_key" 401 unknown_key \
	"$(sign_ed25519 "$ACME_KEY" "nokey-$RUN" "{$base,\"points\":1.5,\"iat\":$N}")"
rej "order: bad signature + bad schema: invalid_signature" 401 invalid_signature \
	"$(jws_flip_sig "$(ed "{$base,\"points\":1.5,\"iat\":$N}")")"
rejp "order: bad schema + partner mismatch: invalid_message" 400 invalid_message \
	"{\"v\":1,\"type\":\"issue\",\"partner\":\"globex\",\"id\":\"$ID-o2\",\"member\":\"$MA\",\"points\":1.5,\"iat\":$N}"
rejp "order: partner mismatch + stale: partner_mismatch" 403 partner_mismatch \
	"$(pl issue "$ID-o3" "$MA" 1 $((N - 1000)) globex)"
rejp "order: stale + insufficient points: stale_message" 422 stale_message \
	"$(pl redeem "$ID-o4" "$MA" 999999999 $((N - 1000)))"
rejp "order: stale + unknown member: stale_message" 422 stale_message \
	"$(pl redeem "$ID-o5" "nobody-$RUN" 1 $((N - 1000)))"
rejp "order: unknown original (also another member): unknown_original" 404 unknown_original \
	"$(pl reverse "$ID-o6" "nobody-$RUN" 5000 "$N" acme ",\"reverses\":\"nothing-$RUN\"")"
rejp "order: reverse for another member + over-reversal: invalid_message" 400 invalid_message \
	"$(pl reverse "$ID-o7" "$MB" 5000 "$N" acme ",\"reverses\":\"$ID-1\"")"
rejp "order: over-reversal + insufficient points: over_reversal" 422 over_reversal \
	"$(pl reverse "$ID-o8" "$MA" 900 "$N" acme ",\"reverses\":\"$ID-1\"")"
rejp "order: unknown member before insufficient points" 404 unknown_member \
	"$(pl redeem "$ID-o9" "nobody-$RUN" 999999999)"
rej "order: stored id with different bytes and a bad signature: 409 duplicate_conflict" 409 duplicate_conflict \
	"$(jws_flip_sig "$(ed "$(pl issue "$ID-1" "$MA" 999)")")"
rej "order: stored id, identical payload, re-signed by the ES256 key: 409" 409 duplicate_conflict \
	"$(es "$(printf '%s' "$J1" | cut -d. -f2 | b64url_decode)")"
rej "order: stored id with an unknown kid: 409 duplicate_conflict" 409 duplicate_conflict \
	"$(sign_ed25519 "$ACME_KEY" "nokey-$RUN" "$(pl issue "$ID-1" "$MA" 1000)")"
rej "order: stored id with typ JWT: malformed_jws before the stored-id check" 400 malformed_jws \
	"$(ed "$(pl issue "$ID-1" "$MA" 1000)" '{"alg":"EdDSA","kid":"acme-1","typ":"JWT"}')"
rej "order: stored id with alg none: unsupported_alg" 400 unsupported_alg \
	"$(hdr_b64 '{"alg":"none","kid":"acme-1"}').$(printf '%s' "$J1" | cut -d. -f2).$SIG"
printf 'garbage' >"$T/garbage"
before=$(count_rows)
req acme POST /v1/messages "$T/garbage" application/json
expect_code "order: garbage with Content-Type application/json: 415 first" 415 unsupported_media_type
req acme POST /v1/messages "$T/j1.jws" text/plain
expect_code "unsupported_media_type: a stored message's bytes as text/plain: 415" 415 unsupported_media_type
req acme POST /v1/messages "$T/j1.jws" application/x-www-form-urlencoded
expect_code "unsupported_media_type: form encoded" 415 unsupported_media_type
req acme POST /v1/batches "$T/j1.jws" application/json
expect_code "unsupported_media_type: batch as application/json" 415 unsupported_media_type
is "415s changed nothing" "$(count_rows)" "$before"

# the revoked key's message, resent after its iat left the window
while (($(now) < JRV_AT + 2)); do sleep 0.2; done
before=$(count_rows)
post_jws acme "$JRV"
is "order: stored id, revoked key, iat out of the window: 200 replay" "$ST $(jget .replayed)" "200 true"
same_reply "replay after the iat window: the stored reply" "$RRV" "$BODY"
rej "stored id (revoked key), other bytes: 409 duplicate_conflict" 409 duplicate_conflict "$(jws_flip_sig "$JRV")"
is "replay after the window changed nothing" "$(count_rows)" "$before"

# --- sizes -------------------------------------------------------------------

head -c 17408 /dev/zero | tr '\0' a >"$T/big"
before=$(count_rows)
req acme POST /v1/messages "$T/big"
expect_code "payload_too_large: 17 KiB body" 413 payload_too_large
head -c 16385 /dev/zero | tr '\0' a >"$T/b16385"
req acme POST /v1/messages "$T/b16385"
expect_code "payload_too_large: 16385 bytes" 413 payload_too_large
head -c 16384 /dev/zero | tr '\0' a >"$T/b16384"
req acme POST /v1/messages "$T/b16384"
expect_code "16384 bytes of garbage: malformed_jws, not too large" 400 malformed_jws
is "size refusals changed nothing" "$(count_rows)" "$before"

# --- not_found: another partner's message is exactly a missing one -----------

req acme GET "/v1/messages/$ID-globex1"
S1=$ST B1=$BODY
req acme GET "/v1/messages/nothing-$RUN"
expect_code "not_found: GET an id nobody used" 404 not_found
is "not_found: GET globex's message id as acme: the same reply as a missing one" "$S1 $B1" "$ST $BODY"
req globex GET "/v1/messages/$ID-globex1"
is "globex reads its own message: 200" "$ST" 200
req acme GET /v1/messages
expect_code "method_not_allowed: GET /v1/messages" 405 method_not_allowed

# --- concurrent duplicates ---------------------------------------------------

par_post() { # N FILE-PREFIX: post $T/FILE-PREFIX.1..N at once; statuses in $T/st.*
	local n=$1 f=$2 i pids=()
	for ((i = 1; i <= n; i++)); do
		curl -sS --max-time 30 --cacert "$PTS_CERTS/ca.crt" --cert "$PTS_CERTS/partners/acme/client.crt" \
			--key "$PTS_CERTS/partners/acme/client.key" -H 'Content-Type: application/jose' \
			--data-binary "@$T/$f.$i" -o "$T/pb.$i" -w '%{http_code}' \
			"https://127.0.0.1:$PTS_PORT/v1/messages" >"$T/st.$i" 2>/dev/null &
		pids+=($!)
	done
	wait "${pids[@]}"
	for ((i = 1; i <= n; i++)); do cat "$T/st.$i"; echo; done | sort | uniq -c | awk '{ printf "%s:%s ", $2, $1 }'
}
J=$(ed "$(pl issue "$ID-cc" "$MB" 3)")
for i in $(seq 20); do printf '%s' "$J" >"$T/cc.$i"; done
is "20 concurrent posts of the same bytes: one 201, nineteen 200" "$(par_post 20 cc)" "200:19 201:1 "
is "one row in messages for $ID-cc" "$(sql "SELECT count(*) FROM messages WHERE partner_id = 'acme' AND msg_id = '$ID-cc'")" 1
is "the 20 replies carry one entry" "$(cat "$T"/pb.* | jq -r .entry | sort -u | wc -l)" 1
for i in $(seq 10); do ed "$(pl issue "$ID-cd" "$MB" "$i")" >"$T/cd.$i"; done
is "10 concurrent posts of one id with different bytes: one 201, nine 409" "$(par_post 10 cd)" "201:1 409:9 "
W=$(for i in $(seq 10); do [[ $(cat "$T/st.$i") == 201 ]] && cat "$T/cd.$i"; done)
is "the stored bytes are the 201's" \
	"$(sql "SELECT jws FROM messages WHERE partner_id = 'acme' AND msg_id = '$ID-cd'")" "$W"

# --- batches -----------------------------------------------------------------

BA=$(ed "$(pl issue "$ID-b1" "$MB" 11)")
BB=$(jws_flip_sig "$(ed "$(pl issue "$ID-b2" "$MB" 12)")")
BA2=$(ed "$(pl issue "$ID-b1" "$MB" 99)")
BC=$(ed "$(pl issue "$ID-b3" "$MB" 13)")
BD=$(es "$(pl issue "$ID-b4" "$MB" 14)")
{
	printf '%s\n' "$BA" "$BB" "$BA" "$BA2" "" "$BC"$'\r' "$(head -c 17000 /dev/zero | tr '\0' a)" "$BD"
} >"$T/batch"
before_m=$(sql "SELECT count(*) FROM messages")
req acme POST /v1/batches "$T/batch"
is "batch: 200" "$ST" 200
is "batch: one result per line, in order" \
	"$(jget '[.results[] | (.code // (.status + "/" + (.replayed|tostring)))] | join(",")')" \
	"posted/false,invalid_signature,posted/true,duplicate_conflict,malformed_jws,malformed_jws,payload_too_large,posted/false"
is "batch: ids of the successes" "$(jget '[.results[] | .id // empty] | join(",")')" "$ID-b1,$ID-b1,$ID-b4"
is "batch: same entry for the line and its replay" "$(jget '.results[0].entry == .results[2].entry')" true
is "batch: error objects are problem objects with status" "$(jget '[.results[1,3,4,5,6] | .status] | join(",")')" \
	"401,409,400,400,413"
is "batch: two messages stored" "$(sql "SELECT count(*) FROM messages")" $((before_m + 2))
is "batch: the \\r line's message was not stored" \
	"$(sql "SELECT count(*) FROM messages WHERE partner_id = 'acme' AND msg_id = '$ID-b3'")" 0
# in-order redemptions: one failing line does not fail the others
{
	ed "$(pl issue "$ID-bi" "m21c-$RUN" 100)"; echo
	ed "$(pl redeem "$ID-br1" "m21c-$RUN" 60)"; echo
	ed "$(pl redeem "$ID-br2" "m21c-$RUN" 60)"; echo
	ed "$(pl redeem "$ID-br3" "m21c-$RUN" 40)"
} >"$T/batch2"
req acme POST /v1/batches "$T/batch2"
is "batch without final LF: issue 100, redeem 60, 60, 40 in order" \
	"$(jget '[.results[] | (.code // (.status + "/" + (.balance|tostring)))] | join(",")')" \
	"posted/100,posted/40,insufficient_points,posted/0"
before=$(count_rows)
yes x | head -n 10001 >"$T/b10001"
req acme POST /v1/batches "$T/b10001"
expect_code "batch of 10,001 lines: 413 payload_too_large" 413 payload_too_large
yes x | head -n 10000 >"$T/b10000"
req acme POST /v1/batches "$T/b10000"
is "batch of 10,000 lines (final LF): 200, 10,000 malformed_jws results" \
	"$ST $(jget '[.results | length, (map(.code) | unique | join(","))] | join(" ")')" "200 10000 malformed_jws"
printf '' >"$T/empty"
req acme POST /v1/batches "$T/empty"
is "empty batch body: one malformed_jws result" "$ST $(jget '[.results[].code] | join(",")')" "200 malformed_jws"
is "refused batches changed nothing" "$(count_rows)" "$before"

finish
