#!/bin/bash
# 50_attacks.sh - the attack-token corpus of tests/cases/attacks/cases.tsv
# against the running server (docs/security.md): each token posted alone
# over mTLS must get its exact status and code and change no ledger row;
# then all of them again as one batch, line by line the same answers; an
# ES256 signature malleated to (r, n-s); and the ed25519-speccheck keys of
# small order or non-canonical encoding refused by `pointsctl key add`.
# Ids, members and kids are unique to this run; acme and globex stay as found.
set -uo pipefail
shopt -u patsub_replacement 2>/dev/null

HERE=$(cd "$(dirname "$0")" && pwd -P)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

T=$LIB_TMP
CASES=$PTS_ROOT/tests/cases/attacks/cases.tsv
SPECCHECK=$PTS_ROOT/tests/cases/vectors/ed25519-speccheck/cases.json
MEMBER=matk-$RUN
IAT=$(date +%s)
ACME_KEY=$PTS_CERTS/partners/acme/signing.key
GLOBEX_KEY=$PTS_CERTS/partners/globex/signing.key
EDKID=$(cat "$PTS_CERTS/partners/acme/signing.kid")
GLOBEXKID=$(cat "$PTS_CERTS/partners/globex/signing.kid")
ESKID=acme-atk-es-$RUN
# P-256 group order n (big-endian hex) and Ed25519 group order L (little-endian hex)
P256_N=FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
ED_L_LE=edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010

# --- setup: an ES256 key for acme, an unregistered Ed25519 key -------------------

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/es.key" 2>/dev/null &&
	openssl pkey -in "$T/es.key" -pubout -out "$T/es.pub" 2>/dev/null &&
	openssl genpkey -algorithm ED25519 -out "$T/foreign.key" 2>/dev/null ||
	{ not_ok "make the keys of this run"; finish; }
if ! ctl key add acme --kid "$ESKID" --public-key "$T/es.pub" >/dev/null; then
	not_ok "pointsctl key add acme --kid $ESKID (ES256)"
	finish
fi

# --- tokens ----------------------------------------------------------------------

# ID of the case NAME: unique to the run, at most 64 characters
case_id() { printf 'atk-%s-%s' "$RUN" "$1" | cut -c1-64; }

repeat_char() { printf '%*s' "$1" '' | tr ' ' "$2"; } # N C

expand() { # TEMPLATE ID: the exact JSON text
	local s=$1 id=$2 n c
	s=${s//@BASE@/\"v\":1,\"type\":\"issue\",\"partner\":\"acme\",\"id\":\"@ID@\",\"member\":\"@MEMBER@\",\"points\":10,\"iat\":@IAT@}
	s=${s//@ID@/$id}
	s=${s//@MEMBER@/$MEMBER}
	s=${s//@IAT@/$IAT}
	s=${s//@EDKID@/$EDKID}
	s=${s//@ESKID@/$ESKID}
	s=${s//@GLOBEXKID@/$GLOBEXKID}
	while [[ $s =~ @NEST:([0-9]+)@ ]]; do
		n=${BASH_REMATCH[1]}
		s=${s/"${BASH_REMATCH[0]}"/$(repeat_char "$n" '[')$(repeat_char "$n" ']')}
	done
	while [[ $s =~ @REP:([0-9]+):(.)@ ]]; do
		n=${BASH_REMATCH[1]}
		c=${BASH_REMATCH[2]}
		s=${s/"${BASH_REMATCH[0]}"/$(repeat_char "$n" "$c")}
	done
	printf '%s' "$s"
}

hex_of() { xxd -p | tr -d '\n'; }

ed_sign_hex() { openssl pkeyutl -sign -inkey "$1" -rawin -in "$T/in" | hex_of; } # KEY

es_sign_der() { openssl dgst -sha256 -sign "$T/es.key" -out "$T/sig.der" "$T/in"; }

es_sign_hex() { es_sign_der && lib_der_to_raw_hex "$T/sig.der"; }

# little-endian 32-byte addition A + B (hex); no carry out for S + L
le_add_hex() { # A B
	local a=$1 b=$2 i carry=0 v out=
	for ((i = 0; i < 64; i += 2)); do
		v=$((0x${a:i:2} + 0x${b:i:2} + carry))
		carry=$((v >> 8))
		out+=$(printf '%02x' $((v & 255)))
	done
	((carry == 0)) || return 1
	printf '%s' "$out"
}

sig_hex() { # MODE: the third part's bytes, as hex, for the signing input in $T/in
	local h
	case $1 in
	ed) ed_sign_hex "$ACME_KEY" ;;
	ed_globex) ed_sign_hex "$GLOBEX_KEY" ;;
	ed_foreign) ed_sign_hex "$T/foreign.key" ;;
	es) es_sign_hex ;;
	none) ;;
	zero64 | es_r0s0) repeat_char 128 0 ;;
	hmac_pub)
		openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(hex_of <"$T/es.pub")" -binary "$T/in" | hex_of ;;
	es_rn) h=$(es_sign_hex) && printf '%s%s' "$P256_N" "${h:64}" ;;
	es_sn) h=$(es_sign_hex) && printf '%s%s' "${h:0:64}" "$P256_N" ;;
	es_rmax) h=$(es_sign_hex) && printf '%s%s' "$(repeat_char 64 f)" "${h:64}" ;;
	es_der) es_sign_der && hex_of <"$T/sig.der" ;;
	es_63) h=$(es_sign_hex) && printf '%s' "${h:0:126}" ;;
	es_65) h=$(es_sign_hex) && printf '%s00' "$h" ;;
	ed_sl) h=$(ed_sign_hex "$ACME_KEY") && printf '%s%s' "${h:0:64}" "$(le_add_hex "${h:64}" "$ED_L_LE")" ;;
	ed_63) h=$(ed_sign_hex "$ACME_KEY") && printf '%s' "${h:0:126}" ;;
	ed_65) h=$(ed_sign_hex "$ACME_KEY") && printf '%s00' "$h" ;;
	*) echo "50_attacks: unknown sig mode $1" >&2; return 1 ;;
	esac
}

first_to() { printf '%s%s' "$2" "${1:1}"; } # PART CHAR: first character replaced

# writes the token of a case to FILE (exact bytes; tok mode crlf adds CR LF)
make_token() { # FILE SIG TOK HEADER PAYLOAD
	local file=$1 h p s hex
	h=$(printf '%s' "$4" | b64url)
	p=$(printf '%s' "$5" | b64url)
	printf '%s.%s' "$h" "$p" >"$T/in"
	hex=$(sig_hex "$2") || return 1
	s=$(printf '%s' "$hex" | xxd -r -p | b64url)
	case $3 in
	-) ;;
	pad_h) h+='=' ;;
	pad_p) p+='=' ;;
	pad_s) s+='=' ;;
	plus_h) h=$(first_to "$h" '+') ;;
	slash_p) p=$(first_to "$p" '/') ;;
	star_s) s=$(first_to "$s" '*') ;;
	space_h) h=$(first_to "$h" ' ') ;;
	empty_h) h= ;;
	empty_p) p= ;;
	empty_s) s= ;;
	extra_part) s+='.AAAA' ;;
	crlf) ;;
	*) echo "50_attacks: unknown tok mode $3" >&2; return 1 ;;
	esac
	printf '%s.%s.%s' "$h" "$p" "$s" >"$file"
	[[ $3 != crlf ]] || printf '\r\n' >>"$file"
}

# --- each token alone -------------------------------------------------------------

post_file() { req "$1" POST /v1/messages "$2"; } # CERT FILE

NAMES=() CODES=() STATUSES=()
mkdir -p "$T/tok"
while IFS=$'\t' read -r name cert status code sig tok header payload; do
	[[ -n $name && $name != \#* ]] || continue
	id=$(case_id "$name")
	f=$T/tok/$name
	if ! make_token "$f" "$sig" "$tok" "$(expand "$header" "$id")" "$(expand "$payload" "$id")"; then
		not_ok "$name: build the token"
		continue
	fi
	if [[ $status == 201 ]]; then
		# a control: the key must work (key registration reaches pointsd
		# by NOTIFY, asynchronously: retry while it is unknown_key)
		for ((i = 0; i < 50; i++)); do
			post_file "$cert" "$f"
			[[ $ST == 401 && $(jget .code) == unknown_key ]] || break
			sleep 0.1
		done
		expect_status "$name: control token accepted ($(jget .status))" 201
		continue
	fi
	before=$(count_rows)
	post_file "$cert" "$f"
	after=$(count_rows)
	expect_code "$name: $status $code" "$status" "$code"
	if [[ $before != "$after" ]]; then
		not_ok "$name: nothing changed" "rows before: $before, after: $after"
	fi
	if [[ $tok != crlf ]] && [[ $cert == acme ]]; then
		NAMES+=("$name") CODES+=("$code") STATUSES+=("$status")
	fi
done <"$CASES"

# --- the same tokens as one batch: the same answer for every line -----------------

: >"$T/batch"
for name in "${NAMES[@]}"; do
	cat "$T/tok/$name" >>"$T/batch"
	printf '\n' >>"$T/batch"
done
before=$(count_rows)
req acme POST /v1/batches "$T/batch"
after=$(count_rows)
expect_status "batch of ${#NAMES[@]} attack lines: 200" 200
is "batch: one result per line" "$(jget '.results | length')" "${#NAMES[@]}"
bad=
for i in "${!NAMES[@]}"; do
	got=$(printf '%s' "$BODY" | jq -r ".results[$i] | \"\\(.status) \\(.code)\"" 2>/dev/null)
	[[ $got == "${STATUSES[i]} ${CODES[i]}" ]] || bad+="${NAMES[i]}: got $got, want ${STATUSES[i]} ${CODES[i]}"$'\n'
done
if [[ -z $bad ]]; then
	ok "batch: every line answered as when posted alone"
else
	not_ok "batch: every line answered as when posted alone" "$bad"
fi
is "batch: nothing changed" "$after" "$before"

# --- ES256 malleability: (r, n - s) is another valid signature of the same bytes ----

id=$(case_id malleable)
hdr="{\"alg\":\"ES256\",\"kid\":\"$ESKID\",\"typ\":\"points+jwt\"}"
pl=$(expand '{@BASE@}' "$id")
make_token "$T/m1" es - "$hdr" "$pl"
post_file acme "$T/m1"
expect_status "malleability: the original ES256 token is posted" 201
hex=$(cut -d. -f3 <"$T/m1" | b64url_decode | hex_of)
r=${hex:0:64}
s=$(echo "obase=16; ibase=16; $P256_N - $(echo "${hex:64}" | tr a-f A-F)" | bc | tr -d '\\\n')
while ((${#s} < 64)); do s=0$s; done
printf '%s.%s' "$(cut -d. -f1,2 <"$T/m1")" "$(printf '%s%s' "$r" "$s" | xxd -r -p | b64url)" >"$T/m2"
before=$(count_rows)
post_file acme "$T/m2"
after=$(count_rows)
expect_code "malleability: (r, n-s) of the same message is a duplicate_conflict, not a second posting" \
	409 duplicate_conflict
is "malleability: nothing changed" "$after" "$before"

# --- keys refused at registration: ed25519-speccheck small-order / non-canonical ---

for i in 0 1 3 10 11; do
	pub=$(jq -r ".[$i].pub_key" "$SPECCHECK")
	{
		echo '-----BEGIN PUBLIC KEY-----'
		printf '302a300506032b6570032100%s' "$pub" | xxd -r -p | openssl base64
		echo '-----END PUBLIC KEY-----'
	} >"$T/spec$i.pem"
	ctl key add acme --kid "spec$i-$RUN" --public-key "$T/spec$i.pem" >"$T/out" 2>"$T/err"
	rc=$?
	if ((rc == 1)) && [[ $(wc -l <"$T/err") == 1 && ! -s $T/out ]]; then
		ok "speccheck case $i key refused by pointsctl key add: $(cat "$T/err")"
	else
		not_ok "speccheck case $i key refused by pointsctl key add (exit 1, one line)" \
			"exit $rc; stdout: $(cat "$T/out"); stderr: $(cat "$T/err")"
	fi
done
is "speccheck keys: none registered" \
	"$(sql "SELECT count(*) FROM signing_keys WHERE kid LIKE 'spec%-$RUN'" 2>&1)" 0

finish
