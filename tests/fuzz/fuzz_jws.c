/* fuzz_jws.c - libFuzzer target for compact JWS parsing, header policy,
 * the schema steps the pipeline runs after it, and signature checks.
 * Byte 0 picks the mode: even = the rest is a raw token; odd = the rest is
 * "header JSON \0 payload JSON", made into a token signed here with a fixed
 * test key (bit 1: Ed25519, else P-256) so the fuzzer reaches the checks
 * behind base64url; a parsed token of the key's alg must then verify. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ecdsa.h>

#include "b64url.h"
#include "clearing/jws.h"
#include "clearing/message.h"
#include "errors.h"
#include "fuzz_util.h"

static EVP_PKEY *key_ed, *key_p256;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc; (void)argv;
	key_ed = fuzz_key_ed25519();
	key_p256 = fuzz_key_p256();
	return 0;
}

/* the checks every successfully parsed token goes through in request.c */
static void
fuzz_after_parse(struct jws *t, enum err rc)
{
	struct message m;
	const char *detail = NULL;
	char id[65];
	enum err e;

	FUZZ_CHECK(rc == ERR_OK || rc == ERR_MALFORMED_JWS || rc == ERR_UNSUPPORTED_ALG);
	if (rc != ERR_OK) {
		FUZZ_CHECK(t->detail != NULL);
		return;
	}
	FUZZ_CHECK(t->alg == JWS_ALG_EDDSA || t->alg == JWS_ALG_ES256);
	FUZZ_CHECK(t->kid[0] != '\0' && strlen(t->kid) <= 128);
	FUZZ_CHECK(t->header != NULL && json_is_object(t->header));
	FUZZ_CHECK(t->signing_input_len < t->raw_len);
	FUZZ_CHECK(t->payload != NULL || t->payload_err == ERR_INVALID_MESSAGE);
	if (t->payload != NULL && message_peek_id(t->payload, id) == C_OK)
		FUZZ_CHECK(id[0] != '\0' && strlen(id) <= 64);
	e = message_validate(t->payload, &m, &detail);
	FUZZ_CHECK(e == ERR_OK || (e == ERR_INVALID_MESSAGE && detail != NULL));
	e = jws_verify(t, key_ed);
	FUZZ_CHECK(e == ERR_OK || e == ERR_INVALID_SIGNATURE);
	if (t->alg != JWS_ALG_EDDSA)
		FUZZ_CHECK(e == ERR_INVALID_SIGNATURE);
	e = jws_verify(t, key_p256);
	FUZZ_CHECK(e == ERR_OK || e == ERR_INVALID_SIGNATURE);
	if (t->alg != JWS_ALG_ES256)
		FUZZ_CHECK(e == ERR_INVALID_SIGNATURE);
}

static void
fuzz_raw(const char *raw, size_t len)
{
	static const struct jws_policy opaque = { JWS_TYP_RECEIPT, 1 };
	struct jws t;
	enum err rc;

	rc = jws_parse(raw, len, &t);
	fuzz_after_parse(&t, rc);
	jws_free(&t);
	rc = jws_parse_policy(raw, len, &opaque, &t);
	FUZZ_CHECK(rc != ERR_OK || t.payload == NULL);
	jws_free(&t);
}

/* signs in with OpenSSL directly (not through jws.c); raw r||s for ES256 */
static size_t
fuzz_sign(EVP_PKEY *key, int es256, const char *in, size_t len, unsigned char sig[64])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char der[80];
	const unsigned char *p = der;
	size_t n = sizeof(der);
	ECDSA_SIG *es;
	const BIGNUM *r, *s;

	FUZZ_CHECK(ctx != NULL);
	FUZZ_CHECK(EVP_DigestSignInit(ctx, NULL, es256 ? EVP_sha256() : NULL, NULL, key) == 1);
	FUZZ_CHECK(EVP_DigestSign(ctx, der, &n, (const unsigned char *)in, len) == 1);
	EVP_MD_CTX_free(ctx);
	if (!es256) {
		FUZZ_CHECK(n == 64);
		memcpy(sig, der, 64);
		return 64;
	}
	es = d2i_ECDSA_SIG(NULL, &p, (long)n);
	FUZZ_CHECK(es != NULL);
	ECDSA_SIG_get0(es, &r, &s);
	FUZZ_CHECK(BN_bn2binpad(r, sig, 32) == 32 && BN_bn2binpad(s, sig + 32, 32) == 32);
	ECDSA_SIG_free(es);
	return 64;
}

static void
fuzz_built(const uint8_t *data, size_t size, int ed)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t hlen = nul != NULL ? (size_t)(nul - data) : size;
	const uint8_t *pl = nul != NULL ? nul + 1 : data + size;
	size_t plen = nul != NULL ? size - hlen - 1 : 0;
	size_t cap = b64url_encoded_len(hlen) + b64url_encoded_len(plen) +
	    b64url_encoded_len(64) + 3, n;
	char *tok = malloc(cap);
	unsigned char sig[64];
	struct jws t;
	enum err rc;

	FUZZ_CHECK(tok != NULL);
	n = b64url_encode(data, hlen, tok, cap);
	tok[n++] = '.';
	n += b64url_encode(pl, plen, tok + n, cap - n);
	fuzz_sign(ed ? key_ed : key_p256, !ed, tok, n, sig);
	tok[n++] = '.';
	n += b64url_encode(sig, sizeof(sig), tok + n, cap - n);
	rc = jws_parse(tok, n, &t);
	fuzz_after_parse(&t, rc);
	if (rc == ERR_OK && t.alg == (ed ? JWS_ALG_EDDSA : JWS_ALG_ES256)) {
		/* a correct signature over exactly these bytes verifies ... */
		FUZZ_CHECK(jws_verify(&t, ed ? key_ed : key_p256) == ERR_OK);
		/* ... and one flipped bit does not */
		t.sig[hlen % 64] ^= 0x01;
		FUZZ_CHECK(jws_verify(&t, ed ? key_ed : key_p256) == ERR_INVALID_SIGNATURE);
	}
	jws_free(&t);
	free(tok);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0 || size > 64 * 1024)
		return 0;
	if ((data[0] & 1) == 0)
		fuzz_raw((const char *)data + 1, size - 1);
	else
		fuzz_built(data + 1, size - 1, (data[0] & 2) != 0);
	return 0;
}
