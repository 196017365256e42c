# shellcheck shell=bash
# lib.sh - shared helpers of the protocol integration tests (20-22): JWS made
# with the openssl CLI only (an independent signer), HTTP requests with a
# partner's certificate, result checks, and psql helpers.
# Never starts or stops the stack; sources stack.sh for that and for t_ok.
#
# signing:  b64url / b64url_decode (stdin -> stdout)
#           sign_ed25519 KEYFILE KID PAYLOAD [HEADER_JSON]  compact JWS on stdout
#           sign_es256 KEYFILE KID PAYLOAD [HEADER_JSON]   (DER -> r||s by asn1parse)
#           jws_with_sig JWS SIG_B64URL / jws_flip_sig JWS
#           payload TYPE ID MEMBER POINTS [IAT [PARTNER [EXTRA]]] / partner_jws PARTNER PAYLOAD
# http:     req CERT METHOD PATH [BODYFILE [CONTENT_TYPE]]  sets ST BODY HDR CTYPE
#           post_msg CERT BODYFILE [PATH]  prints status, then body (sets ST BODY
#           when not called in a subshell)
#           post_jws CERT JWS [PATH]       req with the JWS string as the exact body
#           jget [JQ OPTIONS] FILTER       jq -r on BODY
#           conn_open CERT / conn_req METHOD PATH / conn_wait_status / conn_close:
#           one live keep-alive TLS connection (openssl s_client coprocess)
# checks:   ok / not_ok / is DESC GOT WANT / expect_status DESC WANT /
#           expect_code DESC STATUS CODE / expect_reject DESC CERT JWS STATUS CODE /
#           finish (exit 1 if anything failed)
# database: sql "SQL" / ctl ARGS / ctl_sync ARGS (waits for pointsd's registry
#           reload) / count_rows (entries transfers messages lots lot_moves
#           receipts, Σ lot remaining, Σ reversed_points: one line)
# misc:     new_partner ID / cert_fp FILE / at_exit CMD / sleep_until_second N
set -uo pipefail

LIB_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source-path=SCRIPTDIR source=stack.sh
. "$LIB_HERE/stack.sh"

: "${PTS_CERTS:?PTS_CERTS must be set}" "${PTS_PORT:?PTS_PORT must be set}"
: "${PTS_DB_ADMIN:?PTS_DB_ADMIN must be set}" "${PTS_BIN:?PTS_BIN must be set}"

LIB_TMP=$(mktemp -d "${TMPDIR:-/tmp}/pts-itest.XXXXXX") || exit 1
LIB_CLEANUPS=()
lib_cleanup() {
	local c
	conn_close
	for c in "${LIB_CLEANUPS[@]}"; do
		eval "$c" >/dev/null 2>&1
	done
	rm -rf "$LIB_TMP"
}
trap lib_cleanup EXIT
# run CMD (a string) when the script exits, before the temp dir is removed
at_exit() { LIB_CLEANUPS+=("$1"); }

# unique per run, so the tests work on a used database and can run twice
# shellcheck disable=SC2034 # used by the scripts that source this file
RUN=$(date +%s)$$$RANDOM
CA=$PTS_ROOT/certs/ca
PSQL=psql
[[ -n ${PTS_PGBIN:-} && -x $PTS_PGBIN/psql ]] && PSQL=$PTS_PGBIN/psql

# --- results -----------------------------------------------------------------

ok() { t_ok "$1"; }
not_ok() { t_not_ok "$@"; }
is() { t_is "$@"; }
finish() { t_done; }

# --- base64url and JWS -------------------------------------------------------

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

b64url_decode() {
	local s
	s=$(tr -- '-_' '+/')
	case $((${#s} % 4)) in
	2) s+='==' ;;
	3) s+='=' ;;
	esac
	printf '%s' "$s" | openssl base64 -A -d
}

# SIGNING-INPUT of HEADER_JSON and PAYLOAD (exact bytes, no newline added)
lib_signing_input() { # HEADER_JSON PAYLOAD
	printf '%s.%s' "$(printf '%s' "$1" | b64url)" "$(printf '%s' "$2" | b64url)"
}

sign_ed25519() { # KEYFILE KID PAYLOAD [HEADER_JSON]
	local key=$1 kid=$2 payload=$3 hdr=${4:-} in sig
	[[ -n $hdr ]] || hdr="{\"alg\":\"EdDSA\",\"kid\":\"$kid\",\"typ\":\"points+jwt\"}"
	in=$(lib_signing_input "$hdr" "$payload")
	printf '%s' "$in" >"$LIB_TMP/sig.in"
	sig=$(openssl pkeyutl -sign -inkey "$key" -rawin -in "$LIB_TMP/sig.in" | b64url) || return 1
	[[ -n $sig ]] || return 1
	printf '%s.%s' "$in" "$sig"
}

# DER ECDSA-Sig-Value -> 64 bytes r||s (hex), via openssl asn1parse
lib_der_to_raw_hex() { # DERFILE
	local ints=() v
	while read -r v; do
		v=${v##*:}
		v=${v,,}
		while [[ $v == 0* ]]; do v=${v#0}; done
		while ((${#v} < 64)); do v=0$v; done
		((${#v} == 64)) || return 1
		ints+=("$v")
	done < <(openssl asn1parse -inform DER -in "$1" | grep 'INTEGER')
	((${#ints[@]} == 2)) || return 1
	printf '%s%s' "${ints[0]}" "${ints[1]}"
}

sign_es256() { # KEYFILE KID PAYLOAD [HEADER_JSON]
	local key=$1 kid=$2 payload=$3 hdr=${4:-} in raw
	[[ -n $hdr ]] || hdr="{\"alg\":\"ES256\",\"kid\":\"$kid\",\"typ\":\"points+jwt\"}"
	in=$(lib_signing_input "$hdr" "$payload")
	printf '%s' "$in" >"$LIB_TMP/sig.in"
	openssl dgst -sha256 -sign "$key" -out "$LIB_TMP/sig.der" "$LIB_TMP/sig.in" || return 1
	raw=$(lib_der_to_raw_hex "$LIB_TMP/sig.der") || return 1
	printf '%s.%s' "$in" "$(printf '%s' "$raw" | xxd -r -p | b64url)"
}

# a JWS with its signature part replaced
jws_with_sig() { printf '%s.%s' "${1%.*}" "$2"; }

# a JWS whose signature has its first byte flipped (same length)
jws_flip_sig() {
	local sig hex first
	sig=${1##*.}
	hex=$(printf '%s' "$sig" | b64url_decode | xxd -p | tr -d '\n')
	first=$(printf '%02x' $((0x${hex:0:2} ^ 0x01)))
	jws_with_sig "$1" "$(printf '%s%s' "$first" "${hex:2}" | xxd -r -p | b64url)"
}

# a payload of the protocol (exact bytes): TYPE ID MEMBER POINTS [IAT [PARTNER [EXTRA]]]
# EXTRA is raw JSON members appended, e.g. ',"reverses":"x"'
payload() {
	local type=$1 id=$2 member=$3 points=$4 iat=${5:-$(date +%s)} partner=${6:-acme} extra=${7:-}
	printf '{"v":1,"type":"%s","partner":"%s","id":"%s","member":"%s","points":%s,"iat":%s%s}' \
		"$type" "$partner" "$id" "$member" "$points" "$iat" "$extra"
}

# signed with the partner's registered Ed25519 key (kid PARTNER-1) by openssl
acme_jws() { sign_ed25519 "$PTS_CERTS/partners/acme/signing.key" acme-1 "$1"; }
globex_jws() { sign_ed25519 "$PTS_CERTS/partners/globex/signing.key" globex-1 "$1"; }
partner_jws() { # PARTNER PAYLOAD
	sign_ed25519 "$PTS_CERTS/partners/$1/signing.key" "$(cat "$PTS_CERTS/partners/$1/signing.kid")" "$2"
}

# --- HTTP --------------------------------------------------------------------

# CERT: a partner directory name under $PTS_CERTS/partners, or an absolute
# directory holding client.crt and client.key. Sets ST (status, 000 when the
# request failed), BODY, HDR (header file), CTYPE, CURL_RC.
req() { # CERT METHOD PATH [BODYFILE [CONTENT_TYPE]]
	local cert=$1 method=$2 path=$3 file=${4:-} ctype=${5:-application/jose} dir args
	dir=$cert
	[[ $dir == /* ]] || dir=$PTS_CERTS/partners/$cert
	args=(-sS --max-time 20 --cacert "$PTS_CERTS/ca.crt" --cert "$dir/client.crt"
		--key "$dir/client.key" -X "$method" -D "$LIB_TMP/hdr" -o "$LIB_TMP/body"
		-w '%{http_code}')
	if [[ -n $file ]]; then
		args+=(-H "Content-Type: $ctype" --data-binary "@$file")
	fi
	: >"$LIB_TMP/hdr"
	: >"$LIB_TMP/body"
	ST=$(curl "${args[@]}" "https://127.0.0.1:$PTS_PORT$path" 2>"$LIB_TMP/curl.err")
	# shellcheck disable=SC2034 # for the scripts
	CURL_RC=$?
	BODY=$(cat "$LIB_TMP/body")
	HDR=$LIB_TMP/hdr
	CTYPE=$(grep -i '^content-type:' "$HDR" | head -n 1 | cut -d: -f2- | tr -d ' \r')
}

post_msg() { # CERT BODYFILE [PATH]
	req "$1" POST "${3:-/v1/messages}" "$2"
	printf '%s\n%s\n' "$ST" "$BODY"
}

post_jws() { # CERT JWS [PATH]: the JWS as the exact body (no newline)
	printf '%s' "$2" >"$LIB_TMP/post.jws"
	req "$1" POST "${3:-/v1/messages}" "$LIB_TMP/post.jws"
}

jget() { printf '%s' "$BODY" | jq -r "$@" 2>/dev/null; } # [JQ OPTIONS] FILTER on BODY

expect_status() { # DESC WANT
	if [[ $ST == "$2" ]]; then
		ok "$1"
	else
		not_ok "$1" "status $ST (want $2): $BODY"
	fi
}

# status, problem+json content type and code of the last reply
expect_code() { # DESC STATUS CODE
	local code
	code=$(jget .code)
	if [[ $ST == "$2" && $code == "$3" && $CTYPE == application/problem+json* &&
		$(jget .status) == "$2" ]]; then
		ok "$1"
	else
		not_ok "$1" "got $ST $code ($CTYPE), want $2 $3: $BODY"
	fi
}

# --- database ----------------------------------------------------------------

sql() { "$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 "$PTS_DB_ADMIN" -c "$1"; }

ctl() { "$PTS_BIN/pointsctl" --db "$PTS_DB_ADMIN" "$@"; }

# one line of row counts of everything a posting writes
count_rows() {
	sql "SELECT (SELECT count(*) FROM entries) || ' ' || (SELECT count(*) FROM transfers) || ' ' ||
		(SELECT count(*) FROM messages) || ' ' || (SELECT count(*) FROM lots) || ' ' ||
		(SELECT count(*) FROM lot_moves) || ' ' || (SELECT count(*) FROM receipts) || ' ' ||
		(SELECT coalesce(sum(remaining), 0) FROM lots) || ' ' ||
		(SELECT coalesce(sum(reversed_points), 0) FROM messages)"
}

# post JWS as CERT; want STATUS and CODE, and no row changed
expect_reject() { # DESC CERT JWS STATUS CODE [PATH]
	local before after
	before=$(count_rows)
	post_jws "$2" "$3" "${6:-/v1/messages}"
	after=$(count_rows)
	expect_code "$1" "$4" "$5"
	if [[ $before != "$after" ]]; then
		not_ok "$1: nothing changed" "rows before: $before, after: $after"
	fi
}

# wait until the registry of pointsd shows CERT's status as WANT (NOTIFY is
# asynchronous): polls GET /v1/keys until its status is WANT, at most 5 s
wait_status() { # CERT WANT
	local i
	for ((i = 0; i < 50; i++)); do
		req "$1" GET /v1/keys
		[[ $ST == "$2" ]] && return 0
		sleep 0.1
	done
	return 1
}

# --- partners and certificates -------------------------------------------------

cert_fp() { # CERTFILE: SHA-256 fingerprint, lower-case hex without colons
	openssl x509 -in "$1" -noout -fingerprint -sha256 | cut -d= -f2 | tr -d ':' | tr 'A-F' 'a-f'
}

# a partner of this run: certificate and signing key from certs/ca, then
# registered with a rate card, its key (kid ID-1) and active, and pointsd
# has reloaded its registry
new_partner() { # ID
	local id=$1 d=$PTS_CERTS/partners/$1
	"$CA" --dir "$PTS_CERTS" issue "$id" >/dev/null 2>&1 || return 1
	ctl_sync partner add "$id" --name "test partner $id" --cert "$d/client.crt" &&
		ctl_sync rate set "$id" --issue-price 0.01 --redeem-price 0.008 &&
		ctl_sync key add "$id" --kid "$(cat "$d/signing.kid")" --public-key "$d/signing.pub" &&
		ctl_sync partner activate "$id" && wait_status "$id" 200
}

# --- one live TLS connection (openssl s_client as a coprocess) ---------------

CONN_PID=
conn_open() { # CERT (partner name or directory)
	local dir=$1
	[[ $dir == /* ]] || dir=$PTS_CERTS/partners/$1
	coproc CONN { exec openssl s_client -quiet -connect "127.0.0.1:$PTS_PORT" \
		-CAfile "$PTS_CERTS/ca.crt" -cert "$dir/client.crt" -key "$dir/client.key" \
		2>>"$LIB_TMP/conn.err"; }
}

# one request on the live connection; sets ST and BODY (ST=000: no reply)
conn_req() { # METHOD PATH
	local line len=0 LC_ALL=C
	ST=000
	BODY=
	[[ -n ${CONN[1]:-} ]] || return 1
	printf '%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' "$1" "$2" >&"${CONN[1]}" || return 1
	IFS= read -r -t 5 line <&"${CONN[0]}" || return 1
	line=${line%$'\r'}
	[[ $line =~ ^HTTP/1\.1\ ([0-9]{3}) ]] || return 1
	ST=${BASH_REMATCH[1]}
	while IFS= read -r -t 5 line <&"${CONN[0]}"; do
		line=${line%$'\r'}
		[[ -n $line ]] || break
		if [[ ${line,,} =~ ^content-length:\ *([0-9]+) ]]; then
			len=${BASH_REMATCH[1]}
		fi
	done
	if ((len > 0)); then
		IFS= read -r -t 5 -N "$len" BODY <&"${CONN[0]}" || return 1
	fi
	return 0
}

conn_close() {
	[[ -n $CONN_PID ]] || return 0
	kill "$CONN_PID" 2>/dev/null
	wait "$CONN_PID" 2>/dev/null
	CONN_PID=
}

# repeat conn_req until its status is WANT (registry NOTIFY is asynchronous), 5 s
conn_wait_status() { # METHOD PATH WANT
	local i
	for ((i = 0; i < 50; i++)); do
		conn_req "$1" "$2" || return 1
		[[ $ST == "$3" ]] && return 0
		sleep 0.1
	done
	return 1
}

# pointsctl ARGS, then wait (5 s at most) until pointsd logs a registry reload
# that came after it (pointsctl's NOTIFY is asynchronous). Only sound when no
# earlier reload is still pending: make every registry change through it.
ctl_sync() {
	local size i rc
	size=$(stat -c %s "$STACK_LOGFILE" 2>/dev/null || echo 0)
	ctl "$@" >/dev/null
	rc=$?
	for ((i = 0; i < 100; i++)); do
		if tail -c "+$((size + 1))" "$STACK_LOGFILE" 2>/dev/null | grep -q '"registry_loaded"'; then
			sleep 0.05
			return "$rc"
		fi
		sleep 0.05
	done
	echo "lib: no registry reload logged after pointsctl $*" >&2
	return 1
}

# sleep until the wall clock reaches second N (Unix seconds), so that what
# follows runs in the first few hundred milliseconds of it (for tests of the
# inclusive iat window: sign for N first, then sleep, then post)
sleep_until_second() { # N
	local ns
	while (($(date +%s) < $1)); do
		ns=$(date +%N)
		sleep "$(printf '0.%09d' $((1000000000 - 10#$ns)))"
	done
}
