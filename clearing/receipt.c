/* receipt.c - server receipts (protocol.md §4), the receipt key, and public
 * JWKs (RFC 7517/7638) for GET /v1/keys and exports.
 * Owns: receipt payload bytes. Never logs or exports private key material. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>

#include "receipt.h"
#include "b64url.h"
#include "errors.h"
#include "jws.h"
#include "log.h"
#include "pts_assert.h"

#define ED25519_KEY_BYTES 32
#define P256_COORD_BYTES 32

void
sha256_hex(const void *data, size_t len, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[32];
	unsigned int md_len = 0;
	size_t i;

	PTS_ASSERT(EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL) == 1);
	PTS_ASSERT(md_len == sizeof(md));
	for (i = 0; i < sizeof(md); i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

char *
receipt_sign(EVP_PKEY *key, const char *kid, const struct receipt_fields *f)
{
	json_t *p = NULL;
	char *payload = NULL, *out = NULL;

	PTS_ASSERT(key != NULL && kid != NULL && f != NULL);
	if (!EVP_PKEY_is_a(key, "ED25519"))
		goto out;
	p = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:s}",
	    "partner", f->partner, "id", f->id, "type", f->type,
	    "member", f->member, "points", (json_int_t)f->points,
	    "balance", (json_int_t)f->balance, "entry", (json_int_t)f->entry,
	    "accepted_at", f->accepted_at, "period", f->period,
	    "sha256", f->sha256_hex);
	if (p == NULL)
		goto out;
	payload = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
	if (payload == NULL)
		goto out;
	out = jws_sign_compact(key, kid, JWS_TYP_RECEIPT, payload,
	    strlen(payload));
out:
	free(payload);
	json_decref(p);
	return out;
}

static int
receipt_b64_raw(EVP_PKEY *key, char x[44])
{
	unsigned char pk[ED25519_KEY_BYTES];
	size_t pk_len = sizeof(pk);

	ERR_clear_error();
	if (EVP_PKEY_get_raw_public_key(key, pk, &pk_len) != 1 ||
	    pk_len != sizeof(pk)) {
		ERR_clear_error();
		return C_ERR;
	}
	b64url_encode(pk, pk_len, x, 44);
	return C_OK;
}

int
receipt_key_kid(EVP_PKEY *key, char out[44])
{
	char x[44], text[128];
	unsigned char md[32];
	unsigned int md_len = 0;
	int n;

	out[0] = '\0';
	if (key == NULL || !EVP_PKEY_is_a(key, "ED25519") ||
	    receipt_b64_raw(key, x) != C_OK)
		return C_ERR;
	/* RFC 7638: required members only, lexicographic order, no spaces */
	n = snprintf(text, sizeof(text),
	    "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"%s\"}", x);
	PTS_ASSERT(n > 0 && (size_t)n < sizeof(text));
	if (EVP_Digest(text, (size_t)n, md, &md_len, EVP_sha256(), NULL) != 1)
		return C_ERR;
	b64url_encode(md, md_len, out, 44);
	return C_OK;
}

static json_t *
jwk_from_ec(EVP_PKEY *key)
{
	BIGNUM *bx = NULL, *by = NULL;
	unsigned char cx[P256_COORD_BYTES], cy[P256_COORD_BYTES];
	char x[44], y[44];
	json_t *jwk = NULL;

	ERR_clear_error();
	if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &bx) != 1 ||
	    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &by) != 1)
		goto out;
	if (BN_bn2binpad(bx, cx, sizeof(cx)) != (int)sizeof(cx) ||
	    BN_bn2binpad(by, cy, sizeof(cy)) != (int)sizeof(cy))
		goto out;
	b64url_encode(cx, sizeof(cx), x, sizeof(x));
	b64url_encode(cy, sizeof(cy), y, sizeof(y));
	jwk = json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256",
	    "x", x, "y", y);
out:
	ERR_clear_error();
	BN_free(bx);
	BN_free(by);
	return jwk;
}

json_t *
jwk_from_public_pkey(EVP_PKEY *key, const char *kid)
{
	enum jws_alg alg;
	json_t *jwk = NULL;
	char x[44];

	if (jws_alg_from_pkey(key, &alg) != C_OK)
		return NULL;
	if (alg == JWS_ALG_EDDSA) {
		if (receipt_b64_raw(key, x) != C_OK)
			return NULL;
		jwk = json_pack("{s:s, s:s, s:s}", "kty", "OKP", "crv", "Ed25519",
		    "x", x);
	} else {
		jwk = jwk_from_ec(key);
	}
	if (jwk == NULL)
		return NULL;
	if ((kid != NULL &&
	    json_object_set_new(jwk, "kid", json_string(kid)) != 0) ||
	    json_object_set_new(jwk, "alg", json_string(jws_alg_name(alg))) != 0) {
		json_decref(jwk);
		return NULL;
	}
	return jwk;
}

json_t *
receipt_key_jwk(EVP_PKEY *key)
{
	char kid[44];
	json_t *jwk;

	if (receipt_key_kid(key, kid) != C_OK)
		return NULL;
	jwk = jwk_from_public_pkey(key, kid);
	if (jwk == NULL)
		return NULL;
	if (json_object_set_new(jwk, "use", json_string("sig")) != 0) {
		json_decref(jwk);
		return NULL;
	}
	return jwk;
}

/* never prompt on a terminal for a passphrase: encrypted keys are refused */
static int
receipt_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return 0;
}

EVP_PKEY *
receipt_key_load(const char *path)
{
	char esc[512], why[256], why_esc[300];
	BIO *bio = NULL;
	EVP_PKEY *key = NULL;

	log_json_str(esc, sizeof(esc), path);
	ERR_clear_error();
	bio = BIO_new_file(path, "r");
	if (bio == NULL) {
		ERR_error_string_n(ERR_get_error(), why, sizeof(why));
		log_event(LOG_ERROR, "receipt_key_unreadable",
		    "\"path\":%s,\"openssl\":%s", esc,
		    log_json_str(why_esc, sizeof(why_esc), why));
		goto out;
	}
	key = PEM_read_bio_PrivateKey(bio, NULL, receipt_no_passphrase, NULL);
	if (key == NULL) {
		ERR_error_string_n(ERR_get_error(), why, sizeof(why));
		log_event(LOG_ERROR, "receipt_key_invalid",
		    "\"path\":%s,\"openssl\":%s", esc,
		    log_json_str(why_esc, sizeof(why_esc), why));
		goto out;
	}
	if (!EVP_PKEY_is_a(key, "ED25519")) {
		log_event(LOG_ERROR, "receipt_key_not_ed25519", "\"path\":%s", esc);
		EVP_PKEY_free(key);
		key = NULL;
	}
out:
	ERR_clear_error();
	BIO_free(bio);
	return key;
}
