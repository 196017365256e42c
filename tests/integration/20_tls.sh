#!/bin/bash
# 20_tls.sh - the mutual-TLS front door of pointsd (protocol.md §1): every
# handshake rule, every 403 of the registry checks (also on a live keep-alive
# connection), SIGHUP reload of the CRL, and the plain HTTP answers (keys, 404,
# 405). Uses partners unique to this run; leaves acme and globex as found.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd -P)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

C=$PTS_CERTS
URL=https://127.0.0.1:$PTS_PORT

# s_client as CERTDIR (or "" for none) with extra args, sending one request;
# output (stdout and stderr) in $LIB_TMP/sc.out
s_client() { # CERTDIR [ARGS...]
	local dir=$1 args=()
	shift
	[[ -n $dir ]] && args=(-cert "$dir/client.crt" -key "$dir/client.key")
	(printf 'GET /v1/keys HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'; sleep 0.3) |
		timeout 10 openssl s_client -connect "127.0.0.1:$PTS_PORT" -CAfile "$C/ca.crt" \
			"${args[@]}" "$@" >"$LIB_TMP/sc.out" 2>&1
}
sc_has() { grep -qE "$1" "$LIB_TMP/sc.out"; }
sc_served() { sc_has 'HTTP/1\.1 200'; }
# the lines of s_client's output that matter, for a failure report
sc_detail() { grep -aE 'alert|error|New,|Reused|HTTP/1' "$LIB_TMP/sc.out" | head -n 8; }

# curl exit status: the handshake must fail (35 ssl connect, 55/56 send/recv
# failure when a TLS 1.3 alert arrives after the client finished)
expect_handshake_fails() { # DESC CERTDIR|""
	local rc args=()
	[[ -n $2 ]] && args=(--cert "$2/client.crt" --key "$2/client.key")
	curl -sS --max-time 10 -o /dev/null --cacert "$C/ca.crt" "${args[@]}" "$URL/v1/keys" \
		2>"$LIB_TMP/curl.err"
	rc=$?
	case $rc in
	35 | 55 | 56) ok "$1 (curl exit $rc)" ;;
	*) not_ok "$1" "curl exit $rc: $(cat "$LIB_TMP/curl.err")" ;;
	esac
}

# --- handshake rules ---------------------------------------------------------

expect_handshake_fails "no client certificate: handshake fails" ""
s_client ""
if sc_has 'alert (certificate required|handshake failure)' && ! sc_served; then
	ok "no client certificate: s_client gets an alert"
else
	not_ok "no client certificate: s_client gets an alert" "$(sc_detail)"
fi
s_client "" -tls1_2
if sc_has 'alert handshake failure' && ! sc_served; then
	ok "no client certificate (TLS 1.2): handshake failure alert"
else
	not_ok "no client certificate (TLS 1.2): handshake failure alert" "$(sc_detail)"
fi

FOREIGN=$LIB_TMP/foreign
if "$CA" --dir "$FOREIGN" init >/dev/null 2>&1 && "$CA" --dir "$FOREIGN" issue acme >/dev/null 2>&1; then
	expect_handshake_fails "certificate of a foreign CA (CN=acme): handshake fails" "$FOREIGN/partners/acme"
	s_client "$FOREIGN/partners/acme"
	if sc_has 'alert (unknown ca|bad certificate|certificate unknown|decrypt error)' && ! sc_served; then
		ok "certificate of a foreign CA: s_client gets an alert"
	else
		not_ok "certificate of a foreign CA: s_client gets an alert" "$(sc_detail)"
	fi
else
	not_ok "make a foreign CA with certs/ca init"
fi

# an expired certificate of the partner CA, CN=acme
EXP=$LIB_TMP/expired
mkdir -p "$EXP"
if openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$EXP/client.key" 2>/dev/null &&
	openssl req -new -key "$EXP/client.key" -subj /CN=acme -out "$EXP/client.csr" 2>/dev/null &&
	PTS_CA_DIR=$C PTS_CA_SAN=IP:127.0.0.1 openssl ca -batch -config "$C/db/openssl.cnf" -notext \
		-in "$EXP/client.csr" -out "$EXP/client.crt" -extensions pts_client_ext -subj /CN=acme \
		-startdate 20200101000000Z -enddate 20200201000000Z >/dev/null 2>&1; then
	expect_handshake_fails "expired certificate of the partner CA: handshake fails" "$EXP"
else
	not_ok "make an expired certificate with openssl ca"
fi

ACME=$C/partners/acme
for v in tls1_1 tls1; do
	s_client "$ACME" "-$v" -cipher 'DEFAULT@SECLEVEL=0'
	if sc_has 'alert protocol version' && ! sc_served; then
		ok "-$v refused by the server (protocol version alert)"
	else
		not_ok "-$v refused by the server (protocol version alert)" "$(sc_detail)"
	fi
done

s_client "$ACME" -tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256
if sc_has 'New, TLSv1\.2, Cipher is ECDHE-ECDSA-AES128-GCM-SHA256' && sc_served; then
	ok "TLS 1.2 with ECDHE-ECDSA-AES128-GCM-SHA256 serves"
else
	not_ok "TLS 1.2 with ECDHE-ECDSA-AES128-GCM-SHA256 serves" "$(sc_detail)"
fi
for c in ECDHE-ECDSA-AES128-SHA256 ECDHE-ECDSA-AES256-SHA AES128-GCM-SHA256 AES256-SHA256; do
	s_client "$ACME" -tls1_2 -cipher "$c"
	if sc_has 'alert handshake failure' && ! sc_served; then
		ok "TLS 1.2 suite $c refused (CBC or RSA key exchange)"
	else
		not_ok "TLS 1.2 suite $c refused (CBC or RSA key exchange)" "$(sc_detail)"
	fi
done
s_client "$ACME"
if sc_has 'New, TLSv1\.3, Cipher is' && sc_served; then
	ok "TLS 1.3 negotiated by default"
else
	not_ok "TLS 1.3 negotiated by default" "$(sc_detail)"
fi

# --- 403: valid certificates the registry does not accept --------------------

STRANGER=t20x-$RUN
if "$CA" --dir "$C" issue "$STRANGER" >/dev/null 2>&1; then
	req "$STRANGER" GET /v1/keys
	expect_code "valid certificate of an unregistered partner: 403 unknown_partner" 403 unknown_partner
	req "$STRANGER" POST /v1/messages "$ACME/client.crt"
	expect_code "unregistered partner, POST: 403 unknown_partner" 403 unknown_partner
else
	not_ok "issue a certificate for $STRANGER"
fi

# a second valid certificate of acme (fresh key), signed by the CA but not registered
ACME2=$LIB_TMP/acme2
mkdir -p "$ACME2"
cat >"$ACME2/ext.cnf" <<'EXT'
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
EXT
if openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$ACME2/client.key" 2>/dev/null &&
	openssl req -new -key "$ACME2/client.key" -subj /CN=acme -out "$ACME2/client.csr" 2>/dev/null &&
	openssl x509 -req -in "$ACME2/client.csr" -CA "$C/ca.crt" -CAkey "$C/ca.key" -days 30 \
		-set_serial "0x$(openssl rand -hex 12)" -extfile "$ACME2/ext.cnf" -out "$ACME2/client.crt" 2>/dev/null; then
	FP2=$(cert_fp "$ACME2/client.crt")
	req "$ACME2" GET /v1/keys
	expect_code "acme's second certificate, not registered: 403 unknown_partner" 403 unknown_partner
	if ctl_sync partner cert acme --add "$ACME2/client.crt"; then
		if wait_status "$ACME2" 200; then
			ok "after partner cert acme --add: 200"
		else
			not_ok "after partner cert acme --add: 200" "status $ST: $BODY"
		fi
		req acme GET /v1/keys
		expect_status "acme's first certificate still serves" 200
		ctl_sync partner cert acme --remove "$FP2" || not_ok "partner cert acme --remove"
		if wait_status "$ACME2" 403; then
			expect_code "after partner cert acme --remove: 403 unknown_partner" 403 unknown_partner
		else
			not_ok "after partner cert acme --remove: 403 unknown_partner" "status $ST: $BODY"
		fi
	else
		not_ok "pointsctl partner cert acme --add"
	fi
else
	not_ok "make a second certificate for acme with openssl x509 -req"
fi

# --- suspension and certificate removal on a live keep-alive connection ------

SUSP=t20s-$RUN
if new_partner "$SUSP"; then
	conn_open "$SUSP"
	conn_req GET /v1/keys
	is "live connection: first request 200" "$ST" 200
	ctl_sync partner suspend "$SUSP"
	if conn_wait_status GET /v1/keys 403; then
		BODY_CODE=$(jget .code)
		is "live connection: after suspend, same connection gets 403 partner_suspended" "$BODY_CODE" partner_suspended
	else
		not_ok "live connection: after suspend, same connection gets 403" "status $ST: $BODY"
	fi
	req "$SUSP" GET /v1/keys
	expect_code "suspended partner, new connection: 403 partner_suspended" 403 partner_suspended
	ctl_sync partner activate "$SUSP"
	if conn_wait_status GET /v1/keys 200; then
		ok "live connection: after activate, 200 again on the same connection"
	else
		not_ok "live connection: after activate, 200 again on the same connection" "status $ST: $BODY"
	fi
	ctl_sync partner cert "$SUSP" --remove "$(cert_fp "$C/partners/$SUSP/client.crt")"
	if conn_wait_status GET /v1/keys 403; then
		is "live connection: certificate removed from the registry: 403 unknown_partner" \
			"$(jget .code)" unknown_partner
	else
		not_ok "live connection: certificate removed from the registry: 403" "status $ST: $BODY"
	fi
	conn_close
else
	not_ok "register partner $SUSP"
fi

# --- CRL: revoke, SIGHUP, the certificate fails the handshake ----------------

REV=t20r-$RUN
if new_partner "$REV"; then
	req "$REV" GET /v1/keys
	expect_status "throwaway partner $REV serves before revocation" 200
	# a TLS session to resume after the revocation
	s_client "$C/partners/$REV" -sess_out "$LIB_TMP/rev.sess"
	s_client "$C/partners/$REV" -sess_in "$LIB_TMP/rev.sess"
	if sc_has '^Reused, TLSv1\.3' && sc_served; then
		ok "a saved TLS session resumes before the revocation"
	else
		not_ok "a saved TLS session resumes before the revocation" "$(sc_detail)"
	fi
	conn_open "$REV"
	conn_req GET /v1/keys
	is "$REV live connection before the revocation: 200" "$ST" 200
	if "$CA" --dir "$C" revoke "$REV" >/dev/null 2>&1; then
		req "$REV" GET /v1/keys
		expect_status "revoked but not reloaded: the old CRL is in force (200)" 200
		if stack_sighup; then
			ok "SIGHUP reloads and pointsd keeps serving"
		else
			not_ok "SIGHUP reloads and pointsd keeps serving"
		fi
		expect_handshake_fails "revoked certificate after SIGHUP: handshake fails" "$C/partners/$REV"
		s_client "$C/partners/$REV"
		if sc_has 'alert certificate revoked' && ! sc_served; then
			ok "revoked certificate: s_client gets certificate revoked alert"
		else
			not_ok "revoked certificate: s_client gets certificate revoked alert" "$(sc_detail)"
		fi
		if [[ -s $LIB_TMP/rev.sess ]]; then
			s_client "$C/partners/$REV" -sess_in "$LIB_TMP/rev.sess"
			if ! sc_has '^Reused' && ! sc_served; then
				ok "revoked certificate: a session from before SIGHUP is not resumed"
			else
				not_ok "revoked certificate: a session from before SIGHUP is not resumed" "$(sc_detail)"
			fi
		else
			not_ok "save a TLS session of $REV (s_client -sess_out)"
		fi
		# protocol.md §1: a revocation takes effect on live keep-alive connections
		conn_req GET /v1/keys
		if [[ $ST != 200 ]]; then
			ok "revoked certificate on a live keep-alive connection: refused after SIGHUP ($ST)"
		else
			not_ok "revoked certificate on a live keep-alive connection: refused after SIGHUP" \
				"the connection opened before the revocation still gets $ST"
		fi
	else
		not_ok "certs/ca revoke $REV"
	fi
	conn_close
else
	not_ok "register partner $REV"
fi

# CA and CRL reload without dropping live connections
conn_open acme
conn_req GET /v1/keys
is "acme live connection before SIGHUP: 200" "$ST" 200
stack_sighup || not_ok "second SIGHUP"
conn_req GET /v1/keys
is "acme live connection survives SIGHUP: 200 on the same connection" "$ST" 200
conn_close
req acme GET /v1/keys
expect_status "acme new connection after SIGHUP: 200" 200

# --- plain HTTP answers ------------------------------------------------------

req acme GET /v1/keys
if [[ $ST == 200 && $CTYPE == application/jwk-set+json* ]] &&
	jget '.keys | length > 0 and all(.[]; .kty == "OKP" and .crv == "Ed25519" and .alg == "EdDSA" and (.kid | length > 0) and (.x | test("^[A-Za-z0-9_-]{43}$")) and (has("d") | not))' | grep -qx true; then
	ok "GET /v1/keys: JWK Set, application/jwk-set+json, public Ed25519 keys only"
else
	not_ok "GET /v1/keys: JWK Set, application/jwk-set+json" "$ST $CTYPE $BODY"
fi

for p in /v1/nothing / /v1/messages/ /v1/members/ /v2/keys "/v1/messages/a%20b"; do
	req acme GET "$p"
	expect_code "GET $p: 404 not_found, problem+json" 404 not_found
done

printf 'x' >"$LIB_TMP/x.body"
for m in "GET /v1/messages POST" "GET /v1/batches POST" "PUT /v1/messages POST" \
	"POST /v1/keys GET" "DELETE /v1/members/m1 GET" "POST /v1/messages/abc GET"; do
	read -r meth path allow <<<"$m"
	if [[ $meth == GET || $meth == DELETE ]]; then
		req acme "$meth" "$path"
	else
		req acme "$meth" "$path" "$LIB_TMP/x.body"
	fi
	expect_code "$meth $path: 405 method_not_allowed" 405 method_not_allowed
	got=$(grep -i '^allow:' "$HDR" | cut -d: -f2- | tr -d ' \r')
	is "$meth $path: Allow: $allow" "$got" "$allow"
done

finish
