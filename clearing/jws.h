/* jws.h - compact JWS (RFC 7515) for partner messages and server receipts.
 * Owns: structure, header policy, EdDSA/ES256 signatures. Never looks at
 * the database or at the payload schema (message.c does that). */
#ifndef PTS_JWS_H
#define PTS_JWS_H

#include <stddef.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "errors.h"

#define JWS_TYP_MESSAGE "points+jwt"
#define JWS_TYP_RECEIPT "points-receipt+jwt"
#define JWS_ES256_SIG_BYTES 64
#define JWS_EDDSA_SIG_BYTES 64

enum jws_alg { JWS_ALG_UNKNOWN = 0, JWS_ALG_EDDSA, JWS_ALG_ES256 };

struct jws {
	const char *raw;                /* exact request bytes, not owned */
	size_t raw_len;
	size_t signing_input_len;       /* length of "header.payload" */
	enum jws_alg alg;
	char kid[129];
	json_t *header;                 /* owned */
	json_t *payload;                /* owned, NULL if payload_err != ERR_OK */
	enum err payload_err;           /* ERR_OK or ERR_INVALID_MESSAGE */
	unsigned char *sig;             /* owned, decoded signature bytes */
	size_t sig_len;
	const char *detail;             /* static text for problem+json detail */
};

/* what a parse accepts beyond the fixed rules */
struct jws_policy {
	const char *typ;        /* the only accepted typ (typ may be absent) */
	int payload_opaque;     /* 1: payload bytes are not parsed as JSON
	                         * (foreign test tokens); payload stays NULL */
};

/* partner messages: typ points+jwt, payload a JSON object */
extern const struct jws_policy jws_policy_message;
enum err jws_parse(const char *raw, size_t raw_len, struct jws *out);
/* ERR_OK, ERR_MALFORMED_JWS or ERR_UNSUPPORTED_ALG; out must be jws_free'd
 * in every case */
enum err jws_parse_policy(const char *raw, size_t raw_len,
    const struct jws_policy *policy, struct jws *out);
void jws_free(struct jws *t);

/* ERR_OK or ERR_INVALID_SIGNATURE (ERR_INTERNAL only when OpenSSL cannot
 * allocate); a key of another type than alg never verifies */
enum err jws_verify(const struct jws *t, EVP_PKEY *key);
/* the signature step alone: msg is the signing input, sig the decoded
 * third part (EdDSA: R||S; ES256: raw r||s, r and s in [1, n-1]) */
enum err jws_verify_signature(enum jws_alg alg, EVP_PKEY *key,
    const unsigned char *msg, size_t msg_len,
    const unsigned char *sig, size_t sig_len);

const char *jws_alg_name(enum jws_alg a);  /* "EdDSA" / "ES256" */
/* ED25519 -> EdDSA, EC P-256 -> ES256; C_ERR otherwise */
int jws_alg_from_pkey(EVP_PKEY *key, enum jws_alg *out);

/* signs header {"alg":...,"kid":kid[,"typ":typ]} (compact, in that order)
 * and the payload bytes; malloc'd NUL-terminated compact JWS, or NULL */
char *jws_sign_compact(EVP_PKEY *key, const char *kid, const char *typ,
    const char *payload, size_t payload_len);

#endif
