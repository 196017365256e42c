#!/bin/bash
# 51_tlsscan.sh - the TLS face of pointsd seen by a real scanner (testssl,
# Debian package testssl.sh) and by openssl s_client: no SSLv3/TLS 1.0/1.1,
# no CBC suite, no RSA key exchange, no compression, forward secrecy, and a
# client certificate required. About 30 s; set PTS_NO_TLSSCAN=1 to run only
# the openssl s_client subset (a few seconds). Never changes the stack.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd -P)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

T=$LIB_TMP
C=$PTS_CERTS
ACME=$C/partners/acme

# --- quick subset: openssl s_client -----------------------------------------------

# handshake with ARGS and acme's certificate: 0 if it completes
hs() { # ARGS...
	# stdin stays open a moment, so s_client prints its session block
	sleep 0.2 | timeout 10 openssl s_client -connect "127.0.0.1:$PTS_PORT" -CAfile "$C/ca.crt" \
		-cert "$ACME/client.crt" -key "$ACME/client.key" "$@" >"$T/hs.out" 2>&1 &&
		grep -qE '^New, TLSv1\.[0-3], Cipher is [A-Z0-9_-]+$' "$T/hs.out"
}
hs_refused() { # DESC ARGS...
	local d=$1
	shift
	if hs "$@"; then
		not_ok "$d" "$(grep -E '^New, |Protocol' "$T/hs.out" | head -n 3)"
	else
		ok "$d"
	fi
}
hs_accepted() { # DESC ARGS...
	local d=$1
	shift
	if hs "$@"; then
		ok "$d: $(grep -m1 -E '^New, ' "$T/hs.out")"
	else
		not_ok "$d" "$(grep -aiE 'alert|error' "$T/hs.out" | head -n 3)"
	fi
}

hs_accepted "s_client: TLS 1.3 handshake" -tls1_3
hs_accepted "s_client: TLS 1.2 handshake" -tls1_2
# the local openssl may refuse old versions itself at its default security
# level: @SECLEVEL=0 lets it offer them, so a refusal is the server's
hs_refused "s_client: TLS 1.1 refused" -tls1_1 -cipher 'ALL:@SECLEVEL=0'
hs_refused "s_client: TLS 1.0 refused" -tls1 -cipher 'ALL:@SECLEVEL=0'
hs_refused "s_client: RSA key exchange (AES128-GCM-SHA256) refused" -tls1_2 -cipher AES128-GCM-SHA256
hs_refused "s_client: RSA key exchange (AES256-SHA, CBC) refused" -tls1_2 -cipher 'AES256-SHA:@SECLEVEL=0'
hs_refused "s_client: ECDHE CBC suites refused" -tls1_2 \
	-cipher 'ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA'
hs_refused "s_client: finite-field DHE suites refused" -tls1_2 -cipher 'DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384'
hs_accepted "s_client: TLS 1.2 ECDHE-ECDSA-AES128-GCM-SHA256" -tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256
hs_accepted "s_client: TLS 1.2 ECDHE-ECDSA-CHACHA20-POLY1305" -tls1_2 -cipher ECDHE-ECDSA-CHACHA20-POLY1305
if hs -tls1_2 && grep -qE '^Compression: NONE' "$T/hs.out"; then
	ok "s_client: no TLS compression"
else
	not_ok "s_client: no TLS compression" "$(grep -E 'Compression' "$T/hs.out")"
fi
(printf 'GET /v1/keys HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'; sleep 0.5) |
	timeout 10 openssl s_client -connect "127.0.0.1:$PTS_PORT" -CAfile "$C/ca.crt" -quiet \
		>"$T/nocert.out" 2>&1
if grep -qaE 'alert (certificate required|handshake failure)' "$T/nocert.out" &&
	! grep -qa 'HTTP/1.1' "$T/nocert.out"; then
	ok "s_client without a client certificate: alert, no HTTP reply"
else
	not_ok "s_client without a client certificate: alert, no HTTP reply" "$(head -n 5 "$T/nocert.out")"
fi

# --- testssl ------------------------------------------------------------------------

TESTSSL=$(command -v testssl || command -v testssl.sh || true)
if [[ ${PTS_NO_TLSSCAN:-0} == 1 ]]; then
	echo "# testssl scan skipped (PTS_NO_TLSSCAN=1)"
	finish
fi
if [[ -z $TESTSSL ]]; then
	not_ok "testssl is installed (Debian package testssl.sh; make deps)"
	finish
fi
# -p protocols, -E ciphers per protocol, -f forward secrecy, -C compression
# (CRIME), -S server defaults (certificate, client authentication)
timeout 240 "$TESTSSL" --quiet --color 0 --warnings off --openssl /usr/bin/openssl \
	--add-ca "$C/ca.crt" -p -E -f -C -S --jsonfile "$T/scan.json" "127.0.0.1:$PTS_PORT" \
	>"$T/scan.txt" 2>&1
rc=$?
cp "$T/scan.json" "${PTS_STACK:-/tmp}/tlsscan.json" 2>/dev/null
if [[ ! -s $T/scan.json ]] || ! jq -e 'length > 0' "$T/scan.json" >/dev/null 2>&1; then
	not_ok "testssl ran (exit $rc) and wrote JSON" "$(tail -n 5 "$T/scan.txt")"
	finish
fi
ok "testssl ran: $(jq -r '.[] | select(.id == "scanTime") | .finding' "$T/scan.json") s, $(jq length "$T/scan.json") findings"

finding() { jq -r --arg id "$1" '[.[] | select(.id == $id) | .finding] | join(" | ")' "$T/scan.json"; }

for p in SSLv2 SSLv3 TLS1 TLS1_1; do
	is "testssl: $p not offered" "$(finding "$p")" "not offered"
done
is "testssl: TLS 1.2 offered" "$(finding TLS1_2)" offered
is "testssl: TLS 1.3 offered" "$(finding TLS1_3)" "offered with final"
is "testssl: forward secrecy offered" "$(finding PFS)" offered
c=$(finding CRIME_TLS)
if [[ $c == not\ vulnerable* ]]; then
	ok "testssl: CRIME (TLS compression) not vulnerable ($c)"
else
	not_ok "testssl: CRIME (TLS compression) not vulnerable" "CRIME_TLS: $c"
fi
# testssl 3.0 has no client certificate option: without one it must not get
# to HTTP. It says "certificate-based authentication" when its service probe
# sees the certificate request, else that it could not determine the service
svc=$(finding service)
if [[ $svc == *certificate-based\ authentication* || $svc == *"determine service"* ]] &&
	[[ $svc != *HTTP\ service\ detected* ]]; then
	ok "testssl: no HTTP without a client certificate (service: $svc)"
else
	not_ok "testssl: no HTTP without a client certificate" "service: $svc"
fi
jq -r '.[] | select(.id | startswith("cipher-")) | .finding' "$T/scan.json" >"$T/ciphers"
n=$(wc -l <"$T/ciphers")
((n > 0)) && ok "testssl: $n cipher suites found" || not_ok "testssl: cipher suites found"
bad=$(grep -E 'CBC|_RSA_WITH_|TLS_RSA_|NULL|EXPORT|RC4|3DES|DES|_DH_|DHE_RSA|_anon_|IDEA|CAMELLIA|ARIA|SEED' "$T/ciphers")
is "testssl: no CBC, RSA key exchange, DHE, NULL, RC4, 3DES or export suite" "$bad" ""
bad=$(awk '{ if ($5 != "ECDH") print }' "$T/ciphers")
is "testssl: every suite's key exchange is ECDH(E)" "$bad" ""
bad=$(awk '{ if ($7 != "AESGCM" && $7 != "ChaCha20") print }' "$T/ciphers")
is "testssl: every suite is AEAD (AES-GCM or ChaCha20-Poly1305)" "$bad" ""
sed 's/^/# /' "$T/ciphers"

finish
