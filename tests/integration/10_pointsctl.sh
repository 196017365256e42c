#!/bin/bash
# 10_pointsctl.sh - every registry command of pointsctl (init, partner, key,
# rate, sign) and every refusal, against the live database of the stack.
# Uses partner ids and kids unique to this run, so it works on a used database.
#
# Environment: PTS_DB_ADMIN (superuser conninfo), PTS_BIN (build dir),
# optional PTS_CERTS (certs/ca directory with partners acme, globex),
# PTS_PGBIN (PostgreSQL binaries; else psql from PATH).
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd -P)
# shellcheck source=stack.sh
. "$HERE/stack.sh"

: "${PTS_DB_ADMIN:?PTS_DB_ADMIN must be set}" "${PTS_BIN:?PTS_BIN must be set}"
CTL=$PTS_BIN/pointsctl
PSQL=psql
[[ -n ${PTS_PGBIN:-} && -x $PTS_PGBIN/psql ]] && PSQL=$PTS_PGBIN/psql

T=$(mktemp -d "${TMPDIR:-/tmp}/pts-t10.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT

SFX=$(date +%s)-$$-$RANDOM
P1=t10a-$SFX        # the partner that goes through every state
P2=t10b-$SFX        # a second partner, for key and cert conflicts

ctl() { "$CTL" --db "$PTS_DB_ADMIN" "$@"; }
sql() { "$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 "$PTS_DB_ADMIN" -c "$1"; }

# run CMD...: sets OUT (stdout), ERR (stderr), RC
run() {
	OUT=$("$@" 2>"$T/err")
	RC=$?
	ERR=$(cat "$T/err")
}

# DESC CMD...: exit 0, nothing on stderr
expect_ok() {
	local desc=$1
	shift
	run "$@"
	if [[ $RC -eq 0 && -z $ERR ]]; then
		t_ok "$desc"
	else
		t_not_ok "$desc" "exit $RC, stderr: $ERR"
	fi
}

# DESC STATUS CMD...: exit STATUS, exactly one line "pointsctl: ..." on stderr
expect_refused() {
	local desc=$1 want=$2 lines
	shift 2
	run "$@"
	lines=$(wc -l <"$T/err")
	if [[ $RC -eq $want && $lines -eq 1 && $ERR == "pointsctl: "* ]]; then
		t_ok "$desc"
	else
		t_not_ok "$desc" "exit $RC (want $want), $lines stderr lines: $ERR"
	fi
}

ossl() { openssl "$@" 2>/dev/null </dev/null; }

# a self-signed client certificate with subject CN=$2
make_cert() { # FILE CN
	ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$1.key" -out "$1" -subj "/O=t10/CN=$2" -days 30
}

# openssl's fingerprint, lower case without colons
openssl_fp() {
	openssl x509 -in "$1" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' |
		tr 'A-F' 'a-f'
}

# PEM public key from hex DER
der_hex_pem() { # HEX FILE
	{
		echo "-----BEGIN PUBLIC KEY-----"
		echo "$1" | xxd -r -p | openssl base64
		echo "-----END PUBLIC KEY-----"
	} >"$2"
}

b64url_decode() {
	local s
	s=$(printf '%s' "$1" | tr '_-' '/+')
	while (( ${#s} % 4 )); do s+='='; done
	printf '%s' "$s" | openssl base64 -d -A
}

# ---- init --------------------------------------------------------------
expect_ok "init on the stack's database" ctl init
before=$(sql "SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
latest=$(sql "SELECT max(version) FROM schema_migrations")
run ctl init
t_is "second init is a no-op" "$RC:$OUT" "0:schema is current (version $latest)"
after=$(sql "SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
t_is "schema_migrations unchanged by a second init" "$after" "$before"
t_is "schema_migrations holds every migration" \
	"$(sql "SELECT count(*) > 0 AND min(version) = 1 FROM schema_migrations")" "t"

# ---- partner add / show / list --------------------------------------------
make_cert "$T/p1.crt" "$P1"
make_cert "$T/p1b.crt" "$P1"
make_cert "$T/p2.crt" "$P2"
make_cert "$T/wrongcn.crt" "$P1-other"
echo "not a certificate" >"$T/garbage.crt"
FP1=$(openssl_fp "$T/p1.crt")
FP1B=$(openssl_fp "$T/p1b.crt")

expect_ok "partner add" ctl partner add "$P1" --name "Test Ten A" --cert "$T/p1.crt"
t_is "partner add prints the fingerprint" "$(sed -n 2p <<<"$OUT")" "certificate $FP1"
expect_ok "partner add of a second partner" ctl partner add "$P2" --name "Test Ten B" --cert "$T/p2.crt"
t_is "stored fingerprint is openssl's sha256, lower case, no colons" \
	"$(sql "SELECT fingerprint FROM partner_certs WHERE partner_id = '$P1'")" "$FP1"
t_is "partner add creates the partner's issued: and redeemed: accounts (sql/006)" \
	"$(sql "SELECT string_agg(name || '/' || kind, ' ' ORDER BY name) FROM accounts WHERE partner_id = '$P1'")" \
	"issued:$P1/issued redeemed:$P1/redeemed"
t_is "subject and not_after stored" \
	"$(sql "SELECT subject, not_after > now() FROM partner_certs WHERE partner_id = '$P1'")" \
	"CN=$P1,O=t10|t"

run ctl partner show "$P1" --json
t_is "partner show --json" \
	"$(jq -r '[.id, .name, .status, .certificates[0].fingerprint, (.keys|length), .rate_card_in_force] | join(" ")' <<<"$OUT")" \
	"$P1 Test Ten A pending $FP1 0 false"
run ctl --json partner list
t_is "partner list --json" \
	"$(jq -r --arg id "$P1" '.[] | select(.id == $id) | [.status, .certs, .keys] | join(" ")' <<<"$OUT")" \
	"pending 1 0"
run ctl partner list
t_is "partner list (table)" "$(awk -v id="$P1" '$1 == id { print $2 }' <<<"$OUT")" "pending"
run ctl partner show "$P1"
t_is "partner show (text)" "$(grep -c "$FP1" <<<"$OUT"):$(grep '^status: ' <<<"$OUT")" "1:status: pending"

expect_refused "partner add refuses an existing id" 1 ctl partner add "$P1" --name X --cert "$T/p1.crt"
expect_refused "partner add refuses a certificate of another CN" 1 ctl partner add "$P1-other" --name X --cert "$T/p1.crt"
expect_refused "partner add refuses a garbage certificate" 1 ctl partner add "t10c-$SFX" --name X --cert "$T/garbage.crt"
expect_refused "partner add refuses a missing file" 1 ctl partner add "t10c-$SFX" --name X --cert "$T/nope.crt"
expect_refused "partner add refuses a bad id" 1 ctl partner add "bad id!" --name X --cert "$T/p1.crt"
expect_refused "partner add refuses an empty name" 1 ctl partner add "$P1" --name "" --cert "$T/p1.crt"
expect_refused "partner add without --cert is a usage error" 2 ctl partner add "t10c-$SFX" --name X
expect_refused "partner add without an id is a usage error" 2 ctl partner add --name X --cert "$T/p1.crt"
expect_refused "partner show of an unknown partner" 1 ctl partner show "t10-nobody-$SFX"
t_is "refused adds left no partner behind" \
	"$(sql "SELECT count(*) FROM partners WHERE id IN ('t10c-$SFX', '$P1-other')")" "0"

# ---- activate needs a rate card ------------------------------------------
run ctl partner activate "$P1"
t_is "activate refused without a rate card" "$RC:$ERR" \
	"1:pointsctl: partner_activate: $P1 has no rate card in force"
expect_refused "activate of an unknown partner" 1 ctl partner activate "t10-nobody-$SFX"

# ---- rate set: refused prices ---------------------------------------------
for bad in -1 1e2 0.0000001 abc 1. .5 1001 " 1" 1,5 "" 1000.000001 "1 " +1 1.2.3; do
	expect_refused "rate set refuses issue price '$bad'" 1 \
		ctl rate set "$P1" --issue-price "$bad" --redeem-price 0.01
done
expect_refused "rate set refuses a bad redeem price" 1 ctl rate set "$P1" --issue-price 1 --redeem-price 0x10
expect_refused "rate set refuses a bad clearing fee" 1 ctl rate set "$P1" --issue-price 1 --redeem-price 1 --clearing-fee -0.5
expect_refused "rate set refuses --from in the past" 1 ctl rate set "$P1" --issue-price 1 --redeem-price 1 --from 2000-01-01
expect_refused "rate set refuses a garbage --from" 1 ctl rate set "$P1" --issue-price 1 --redeem-price 1 --from yesterday-ish
expect_refused "rate set refuses an unknown partner" 1 ctl rate set "t10-nobody-$SFX" --issue-price 1 --redeem-price 1
expect_refused "rate set without --redeem-price is a usage error" 2 ctl rate set "$P1" --issue-price 1
t_is "refused rate sets stored nothing" "$(sql "SELECT count(*) FROM rate_cards WHERE partner_id = '$P1'")" "0"

# ---- rate set: accepted -----------------------------------------------------
expect_ok "rate set now" ctl rate set "$P1" --issue-price 0.01 --redeem-price 0.0125 --clearing-fee 0.000001
t_is "prices stored as integer micros" \
	"$(sql "SELECT issue_price_micros, redeem_price_micros, clearing_fee_micros FROM rate_cards WHERE partner_id = '$P1'")" \
	"10000|12500|1"
expect_ok "rate set in the future at the maximum price" \
	ctl rate set "$P1" --issue-price 1000 --redeem-price 1000.000000 --from "2999-01-01 00:00:00+00"
t_is "maximum price is 1,000,000,000 micros" \
	"$(sql "SELECT issue_price_micros FROM rate_cards WHERE partner_id = '$P1' AND effective_from > now()")" \
	"1000000000"
expect_refused "a second card at the same time is refused" 1 \
	ctl rate set "$P1" --issue-price 1 --redeem-price 1 --from "2999-01-01 00:00:00+00"
run ctl rate list "$P1" --json
t_is "rate list --json: the current card is in force, the future one is not" \
	"$(jq -r '[.[] | "\(.issue_price)/\(.in_force)"] | join(" ")' <<<"$OUT")" \
	"0.010000/true 1000.000000/false"

expect_refused "rate list of an unknown partner" 1 ctl rate list "t10-nobody-$SFX"

# ---- status changes ---------------------------------------------------------
expect_ok "activate with a card in force" ctl partner activate "$P1"
t_is "status active" "$(sql "SELECT status FROM partners WHERE id = '$P1'")" "active"
expect_ok "suspend" ctl partner suspend "$P1"
t_is "status suspended" "$(sql "SELECT status FROM partners WHERE id = '$P1'")" "suspended"
expect_ok "activate again" ctl partner activate "$P1"
t_is "status active again" "$(ctl partner show "$P1" --json | jq -r .status)" "active"
expect_refused "suspend of an unknown partner" 1 ctl partner suspend "t10-nobody-$SFX"

# registry changes notify running servers, in the same transaction
run "$PSQL" -X -q "$PTS_DB_ADMIN" <<EOF
LISTEN pointsd_registry;
\! "$CTL" --db "$PTS_DB_ADMIN" partner suspend "$P2" >/dev/null
SELECT 1;
EOF
t_is "a registry change sends NOTIFY pointsd_registry" \
	"$(grep -c 'notification "pointsd_registry" received' <<<"$OUT")" "1"

# ---- certificates -----------------------------------------------------------
expect_ok "cert --add (renewal)" ctl partner cert "$P1" --add "$T/p1b.crt"
t_is "two certificates registered at once" \
	"$(sql "SELECT string_agg(fingerprint, ' ' ORDER BY fingerprint) FROM partner_certs WHERE partner_id = '$P1'")" \
	"$(printf '%s\n' "$FP1" "$FP1B" | sort | paste -sd ' ')"
expect_refused "cert --add of a registered certificate" 1 ctl partner cert "$P1" --add "$T/p1b.crt"
expect_refused "cert --add of another partner's certificate" 1 ctl partner cert "$P1" --add "$T/p2.crt"
expect_refused "cert --add of a certificate with another CN" 1 ctl partner cert "$P1" --add "$T/wrongcn.crt"
expect_refused "cert --add of garbage" 1 ctl partner cert "$P1" --add "$T/garbage.crt"
if [[ -n ${PTS_CERTS:-} && -f $PTS_CERTS/partners/acme/client.crt ]]; then
	expect_refused "cert --add of acme's certificate (CA-issued, CN acme)" 1 \
		ctl partner cert "$P1" --add "$PTS_CERTS/partners/acme/client.crt"
fi
expect_refused "cert --add for an unknown partner" 1 ctl partner cert "t10-nobody-$SFX" --add "$T/p1.crt"
# openssl's own form: upper case with colons
FP1_OSSL=$(openssl x509 -in "$T/p1.crt" -noout -fingerprint -sha256 | sed 's/.*=//')
expect_ok "cert --remove (openssl's colon form)" ctl partner cert "$P1" --remove "$FP1_OSSL"
t_is "one certificate left" "$(sql "SELECT fingerprint FROM partner_certs WHERE partner_id = '$P1'")" "$FP1B"
expect_refused "cert --remove of a fingerprint not registered" 1 ctl partner cert "$P1" --remove "$FP1"
expect_refused "cert --remove of a malformed fingerprint" 1 ctl partner cert "$P1" --remove "abc123"
expect_refused "cert with both --add and --remove" 2 ctl partner cert "$P1" --add "$T/p1.crt" --remove "$FP1"
expect_refused "cert with neither --add nor --remove" 2 ctl partner cert "$P1"

# ---- signing keys -----------------------------------------------------------
ossl genpkey -algorithm ed25519 -out "$T/ed.key"
ossl pkey -in "$T/ed.key" -pubout -out "$T/ed.pub"
ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/p256.key"
ossl pkey -in "$T/p256.key" -pubout -out "$T/p256.pub"
ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$T/p384.key"
ossl pkey -in "$T/p384.key" -pubout -out "$T/p384.pub"
ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/rsa.key"
ossl pkey -in "$T/rsa.key" -pubout -out "$T/rsa.pub"
echo "garbage" >"$T/garbage.pub"
# Ed25519 identity point (small order): 01 00 .. 00
der_hex_pem "302a300506032b6570032100""01$(printf '0%.0s' {1..62})" "$T/ed-identity.pub"
# a P-256 "point" (1, 1), not on the curve
der_hex_pem "3059301306072a8648ce3d020106082a8648ce3d030107034200""04$(printf '0%.0s' {1..63})1$(printf '0%.0s' {1..63})1" "$T/p256-offcurve.pub"

expect_ok "key add Ed25519" ctl key add "$P1" --kid "$P1-ed" --public-key "$T/ed.pub"
expect_ok "key add P-256 with a validity window" ctl key add "$P1" --kid "$P1-ec" \
	--public-key "$T/p256.pub" --valid-from "now" --valid-until "2999-01-01"
t_is "alg taken from the key" \
	"$(sql "SELECT string_agg(kid || '=' || alg, ' ' ORDER BY kid) FROM signing_keys WHERE partner_id = '$P1'")" \
	"$P1-ec=ES256 $P1-ed=EdDSA"
t_is "public key stored as the same SubjectPublicKeyInfo" \
	"$(sql "SELECT public_pem FROM signing_keys WHERE kid = '$P1-ed'" | openssl pkey -pubin -outform DER 2>/dev/null | sha256sum)" \
	"$(openssl pkey -pubin -in "$T/ed.pub" -outform DER 2>/dev/null | sha256sum)"
expect_refused "key add refuses an RSA key" 1 ctl key add "$P1" --kid "$P1-rsa" --public-key "$T/rsa.pub"
expect_refused "key add refuses a P-384 key" 1 ctl key add "$P1" --kid "$P1-384" --public-key "$T/p384.pub"
expect_refused "key add refuses garbage" 1 ctl key add "$P1" --kid "$P1-g" --public-key "$T/garbage.pub"
expect_refused "key add refuses the Ed25519 small-order identity key" 1 \
	ctl key add "$P1" --kid "$P1-id" --public-key "$T/ed-identity.pub"
expect_refused "key add refuses a P-256 point off the curve" 1 \
	ctl key add "$P1" --kid "$P1-oc" --public-key "$T/p256-offcurve.pub"
expect_refused "key add refuses a private key file" 1 ctl key add "$P1" --kid "$P1-pk" --public-key "$T/ed.key"
expect_refused "key add refuses a duplicate kid" 1 ctl key add "$P1" --kid "$P1-ed" --public-key "$T/p256.pub"
expect_refused "key add refuses a kid of another partner" 1 ctl key add "$P2" --kid "$P1-ed" --public-key "$T/ed.pub"
expect_refused "key add refuses a bad kid" 1 ctl key add "$P1" --kid "bad kid" --public-key "$T/ed.pub"
expect_refused "key add refuses an unknown partner" 1 ctl key add "t10-nobody-$SFX" --kid "$P1-x" --public-key "$T/ed.pub"
expect_refused "key add refuses valid-until before valid-from" 1 \
	ctl key add "$P1" --kid "$P1-w" --public-key "$T/ed.pub" --valid-from 2030-01-01 --valid-until 2029-01-01
expect_refused "key add refuses a garbage timestamp" 1 \
	ctl key add "$P1" --kid "$P1-w" --public-key "$T/ed.pub" --valid-from "not a time"
expect_refused "key add without --public-key is a usage error" 2 ctl key add "$P1" --kid "$P1-w"
t_is "refused keys stored nothing" \
	"$(sql "SELECT count(*) FROM signing_keys WHERE partner_id IN ('$P1', '$P2')")" "2"
run ctl key list "$P1" --json
t_is "key list --json" "$(jq -r '[.[] | "\(.kid)=\(.alg)/\(.state)"] | sort | join(" ")' <<<"$OUT")" \
	"$P1-ec=ES256/active $P1-ed=EdDSA/active"
expect_ok "key revoke" ctl key revoke "$P1-ec"
t_is "revoked_at set" "$(sql "SELECT revoked_at IS NOT NULL FROM signing_keys WHERE kid = '$P1-ec'")" "t"
t_is "key list shows the revocation" \
	"$(ctl key list "$P1" | awk -v k="$P1-ec" '$1 == k { print $3 }')" "revoked"
expect_refused "key revoke of a revoked key" 1 ctl key revoke "$P1-ec"
expect_refused "key revoke of an unknown kid" 1 ctl key revoke "t10-nokey-$SFX"
expect_refused "key list of an unknown partner" 1 ctl key list "t10-nobody-$SFX"

# ---- sign -------------------------------------------------------------------
printf '{"v":1,"type":"issue","partner":"%s","id":"m1","member":"M1","points":5}' "$P1" >"$T/payload.json"
run "$CTL" sign --key "$T/ed.key" --kid "$P1-ed" "$T/payload.json"
JWS=$OUT
IFS=. read -r H PL S <<<"$JWS"
t_is "sign: header" "$(b64url_decode "$H")" "{\"alg\":\"EdDSA\",\"kid\":\"$P1-ed\",\"typ\":\"points+jwt\"}"
t_is "sign: payload keeps key order and gains iat" \
	"$(b64url_decode "$PL" | sed 's/"iat":[0-9]*/"iat":N/')" \
	"{\"v\":1,\"type\":\"issue\",\"partner\":\"$P1\",\"id\":\"m1\",\"member\":\"M1\",\"points\":5,\"iat\":N}"
printf '%s.%s' "$H" "$PL" >"$T/signing-input"
b64url_decode "$S" >"$T/sig"
t_check "sign: the EdDSA signature verifies with openssl" \
	openssl pkeyutl -verify -pubin -inkey "$T/ed.pub" -rawin -in "$T/signing-input" -sigfile "$T/sig"
run "$CTL" sign --key "$T/p256.key" --kid "$P1-ec" <<<'{"iat":7,"v":1}'
IFS=. read -r H PL S <<<"$OUT"
t_is "sign: ES256 from stdin, iat kept" "$(b64url_decode "$H") $(b64url_decode "$PL")" \
	"{\"alg\":\"ES256\",\"kid\":\"$P1-ec\",\"typ\":\"points+jwt\"} {\"iat\":7,\"v\":1}"
t_is "sign: ES256 signature is raw r||s" "$(b64url_decode "$S" | wc -c)" "64"
expect_refused "sign refuses a payload that is not an object" 1 "$CTL" sign --key "$T/ed.key" --kid k1 <<<'[1,2]'
expect_refused "sign refuses invalid json" 1 "$CTL" sign --key "$T/ed.key" --kid k1 <<<'{"v":'
expect_refused "sign refuses duplicate members" 1 "$CTL" sign --key "$T/ed.key" --kid k1 <<<'{"v":1,"v":2}'
expect_refused "sign refuses an RSA key" 1 "$CTL" sign --key "$T/rsa.key" --kid k1 "$T/payload.json"
expect_refused "sign refuses a public key as the key" 1 "$CTL" sign --key "$T/ed.pub" --kid k1 "$T/payload.json"
expect_refused "sign without --kid is a usage error" 2 "$CTL" sign --key "$T/ed.key" "$T/payload.json"

# ---- help, usage errors, database unreachable -----------------------------
for cmd in "" init partner "partner add" "partner list" "partner show" "partner suspend" \
	"partner activate" "partner cert" key "key add" "key revoke" "key list" \
	rate "rate set" "rate list" sign; do
	# shellcheck disable=SC2086
	run "$CTL" $cmd --help
	if [[ $RC -eq 0 && -z $ERR && $OUT == usage:* ]]; then
		t_ok "pointsctl $cmd --help"
	else
		t_not_ok "pointsctl $cmd --help" "exit $RC, stderr: $ERR"
	fi
done
expect_refused "unknown command exits 2" 2 "$CTL" frobnicate
expect_refused "unknown subcommand exits 2" 2 "$CTL" partner frobnicate
expect_refused "missing subcommand exits 2" 2 "$CTL" partner
expect_refused "no command exits 2" 2 "$CTL"
expect_refused "unknown option exits 2" 2 ctl partner list --frobnicate
expect_refused "missing option value exits 2" 2 ctl rate set "$P1" --issue-price
expect_refused "extra argument exits 2" 2 ctl partner show "$P1" extra
expect_refused "database unreachable exits 3" 3 \
	"$CTL" --db "host=127.0.0.1 port=1 dbname=points connect_timeout=3" partner list

# connection from the PG* environment when there is no --db (dbname "points")
if [[ $PTS_DB_ADMIN =~ (^|[[:space:]])host=([^[:space:]]+) ]]; then
	envhost=${BASH_REMATCH[2]}
	envport=5432
	[[ $PTS_DB_ADMIN =~ (^|[[:space:]])port=([0-9]+) ]] && envport=${BASH_REMATCH[2]}
	if [[ $PTS_DB_ADMIN =~ (^|[[:space:]])dbname=points($|[[:space:]]) ]]; then
		run env -u PGDATABASE -u PGSERVICE PGHOST="$envhost" PGPORT="$envport" \
			PGUSER=postgres "$CTL" partner show "$P1" --json
		t_is "PGHOST/PGPORT environment, database points by default" \
			"$RC $(jq -r .id <<<"$OUT" 2>/dev/null)" "0 $P1"
	fi
fi

t_done
