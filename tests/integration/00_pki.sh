#!/bin/bash
# 00_pki.sh - the partner PKI made by certs/ca (docs/certs.md): key types and
# modes, chains, revocation and the CRL as OpenSSL sees them, and the TLS
# handshake of pointsd with good, foreign and revoked client certificates.
set -uo pipefail
. "$PTS_ROOT/tests/integration/stack.sh"

CA=$PTS_ROOT/certs/ca
C=$PTS_CERTS
SCRATCH=$PTS_STACK/pki-scratch
FOREIGN=$PTS_STACK/pki-foreign

key_type() { openssl pkey -in "$1" -noout -text 2>/dev/null | head -n 1; }
pub_of_key() { openssl pkey -in "$1" -pubout 2>/dev/null; }
pub_of_cert() { openssl x509 -in "$1" -noout -pubkey 2>/dev/null; }
serial_of() { openssl x509 -in "$1" -noout -serial | sed 's/^serial=//'; }
mode_of() { stat -c %a "$1"; }
tree_sum() { find "$1" -type f ! -path '*/db/*' | sort | xargs sha256sum | sha256sum; }
verify() { # CAFILE CRLFILE CERT [purpose]
	openssl verify -CAfile "$1" -crl_check -CRLfile "$2" -purpose "${4:-sslclient}" "$3" 2>&1
}
# HTTP status of GET /v1/keys with a client certificate; 000 = no handshake
tls_status() { # CERT KEY
	local args=(-s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$C/ca.crt")
	if [[ -n ${1:-} ]]; then
		args+=(--cert "$1" --key "$2")
	fi
	curl "${args[@]}" "https://127.0.0.1:$PTS_PORT/v1/keys" 2>/dev/null
}

# --- the stack's CA, as made by scripts/devstack.sh setup
t_is "ca.crt is a CA certificate" \
	"$(openssl x509 -in "$C/ca.crt" -noout -ext basicConstraints | tail -n 1 | tr -d ' ')" "CA:TRUE,pathlen:0"
t_check "ca.key is ECDSA P-256" grep -q 'NIST CURVE: P-256' <(openssl pkey -in "$C/ca.key" -noout -text)
t_check "the CRL is signed by the CA" openssl crl -in "$C/ca.crl" -noout -CAfile "$C/ca.crt"
t_check "server.crt verifies for TLS server use with the CRL" verify "$C/ca.crt" "$C/ca.crl" "$C/server.crt" sslserver
t_is "server.crt names 127.0.0.1 and localhost" \
	"$(openssl x509 -in "$C/server.crt" -noout -ext subjectAltName | tail -n 1 | tr -d ' ')" \
	"IPAddress:127.0.0.1,DNS:localhost"
t_is "server.key matches server.crt" "$(pub_of_key "$C/server.key")" "$(pub_of_cert "$C/server.crt")"
t_is "receipt.key is Ed25519" "$(key_type "$C/receipt.key")" "ED25519 Private-Key:"
t_is "receipt.key is PKCS#8 PEM" "$(head -n 1 "$C/receipt.key")" "-----BEGIN PRIVATE KEY-----"

for p in acme globex; do
	d=$C/partners/$p
	t_check "$p client.crt verifies for TLS client use with the CRL" verify "$C/ca.crt" "$C/ca.crl" "$d/client.crt"
	t_is "$p client.crt subject is CN=$p" "$(openssl x509 -in "$d/client.crt" -noout -subject)" "subject=CN = $p"
	t_is "$p client.crt is for client authentication" \
		"$(openssl x509 -in "$d/client.crt" -noout -ext extendedKeyUsage | tail -n 1 | tr -d ' ')" \
		"TLSWebClientAuthentication"
	t_check "$p client key is P-256" grep -q 'NIST CURVE: P-256' <(openssl pkey -in "$d/client.key" -noout -text)
	t_is "$p client.key matches client.crt" "$(pub_of_key "$d/client.key")" "$(pub_of_cert "$d/client.crt")"
	t_is "$p signing.key is Ed25519" "$(key_type "$d/signing.key")" "ED25519 Private-Key:"
	t_is "$p signing.key is PKCS#8 PEM" "$(head -n 1 "$d/signing.key")" "-----BEGIN PRIVATE KEY-----"
	t_is "$p signing.pub is the public half of signing.key" "$(pub_of_key "$d/signing.key")" "$(cat "$d/signing.pub")"
	t_is "$p kid is $p-1" "$(cat "$d/signing.kid")" "$p-1"
done

modes=
for f in "$C/ca.key" "$C/server.key" "$C/receipt.key" "$C"/partners/*/client.key "$C"/partners/*/signing.key; do
	modes+="$(basename "$(dirname "$f")")/$(basename "$f")=$(mode_of "$f") "
done
t_is "every private key is mode 0600" "$(echo "$modes" | tr ' ' '\n' | grep -v '=600$' | grep -v '^$')" ""

# --- a scratch CA: idempotence, renewal, revocation
"$CA" --dir "$SCRATCH" init >/dev/null 2>&1
t_check "certs/ca init makes the whole layout" test -s "$SCRATCH/ca.crt" -a -s "$SCRATCH/ca.key" \
	-a -s "$SCRATCH/ca.crl" -a -s "$SCRATCH/server.crt" -a -s "$SCRATCH/server.key" -a -s "$SCRATCH/receipt.key"
before=$(tree_sum "$SCRATCH")
"$CA" --dir "$SCRATCH" init >/dev/null 2>&1
t_is "a second init leaves the CA unchanged" "$(tree_sum "$SCRATCH")" "$before"

POINTS_CERTS=$SCRATCH "$CA" issue p1 >/dev/null 2>&1
"$CA" issue p2 --dir "$SCRATCH" >/dev/null 2>&1
t_check "issue honours POINTS_CERTS and --dir" test -s "$SCRATCH/partners/p1/client.crt" -a -s "$SCRATCH/partners/p2/client.crt"
before=$(tree_sum "$SCRATCH/partners/p1")
"$CA" --dir "$SCRATCH" issue p1 >/dev/null 2>&1
t_is "issue of an existing partner leaves it unchanged" "$(tree_sum "$SCRATCH/partners/p1")" "$before"
old=$(serial_of "$SCRATCH/partners/p1/client.crt")
sig=$(sha256sum <"$SCRATCH/partners/p1/signing.key")
"$CA" --dir "$SCRATCH" issue p1 --renew >/dev/null 2>&1
new=$(serial_of "$SCRATCH/partners/p1/client.crt")
t_check "issue --renew makes a new certificate" test "$old" != "$new"
t_check "the renewed certificate verifies" verify "$SCRATCH/ca.crt" "$SCRATCH/ca.crl" "$SCRATCH/partners/p1/client.crt"
t_check "the previous certificate is kept beside it" test -s "$SCRATCH/partners/p1/client-$old.crt"
t_is "issue --renew keeps the signing key" "$(sha256sum <"$SCRATCH/partners/p1/signing.key")" "$sig"

t_check "certs/ca revoke exits 0" "$CA" --dir "$SCRATCH" revoke p1
t_check "the CRL lists the revoked serial" grep -qi "Serial Number: $new" \
	<(openssl crl -in "$SCRATCH/ca.crl" -noout -text)
out=$(verify "$SCRATCH/ca.crt" "$SCRATCH/ca.crl" "$SCRATCH/partners/p1/client.crt")
t_check "OpenSSL refuses the revoked certificate with the CRL check" grep -q 'certificate revoked' <<<"$out"
t_check "the other partner still verifies" verify "$SCRATCH/ca.crt" "$SCRATCH/ca.crl" "$SCRATCH/partners/p2/client.crt"
t_check "the previous, unrevoked certificate still verifies" \
	verify "$SCRATCH/ca.crt" "$SCRATCH/ca.crl" "$SCRATCH/partners/p1/client-$old.crt"
t_check "revoking again is harmless" "$CA" --dir "$SCRATCH" revoke p1
t_check "certs/ca crl regenerates a valid CRL" "$CA" --dir "$SCRATCH" crl
t_check "the regenerated CRL still lists the serial" grep -qi "Serial Number: $new" \
	<(openssl crl -in "$SCRATCH/ca.crl" -noout -text -CAfile "$SCRATCH/ca.crt" 2>/dev/null)
t_check "a bad partner id is refused" bash -c "! '$CA' --dir '$SCRATCH' issue '../evil' 2>/dev/null"
t_check "issue without a CA fails" bash -c "! '$CA' --dir '$PTS_STACK/pki-none' issue x 2>/dev/null"

# --- a foreign CA: certificates never cross
"$CA" --dir "$FOREIGN" init >/dev/null 2>&1
"$CA" --dir "$FOREIGN" issue acme >/dev/null 2>&1
t_check "a foreign CA's acme does not verify against the stack CA" \
	bash -c "! openssl verify -CAfile '$C/ca.crt' '$FOREIGN/partners/acme/client.crt' >/dev/null 2>&1"
t_check "the stack's acme does not verify against a foreign CA" \
	bash -c "! openssl verify -CAfile '$FOREIGN/ca.crt' '$C/partners/acme/client.crt' >/dev/null 2>&1"

# --- pointsd's handshake (protocol.md §1)
if stack_pointsd_pid >/dev/null; then
	st=$(tls_status "$C/partners/acme/client.crt" "$C/partners/acme/client.key")
	t_check "acme completes the TLS handshake (HTTP $st)" test "$st" != 000
	t_is "no client certificate: no handshake" "$(tls_status)" "000"
	t_is "a foreign CA's certificate: no handshake" \
		"$(tls_status "$FOREIGN/partners/acme/client.crt" "$FOREIGN/partners/acme/client.key")" "000"
	"$CA" --dir "$C" issue pki-revoked --renew >/dev/null 2>&1
	rc=$C/partners/pki-revoked
	st=$(tls_status "$rc/client.crt" "$rc/client.key")
	t_check "an unregistered partner's valid certificate completes the handshake (HTTP $st)" test "$st" != 000
	"$CA" --dir "$C" revoke pki-revoked >/dev/null 2>&1
	stack_sighup
	t_is "after revoke and SIGHUP, the revoked certificate gets no handshake" \
		"$(tls_status "$rc/client.crt" "$rc/client.key")" "000"
	st=$(tls_status "$C/partners/acme/client.crt" "$C/partners/acme/client.key")
	t_check "acme still completes the handshake after SIGHUP (HTTP $st)" test "$st" != 000
else
	t_not_ok "pointsd is running for the handshake tests"
fi

rm -rf "$SCRATCH" "$FOREIGN" "$PTS_STACK/pki-none"
t_done
