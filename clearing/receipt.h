/* receipt.h - server receipts (protocol.md §4) and the receipt key.
 * Owns: the receipt payload, the receipt key's kid and JWK. Never signs with
 * anything but the server's Ed25519 receipt key. */
#ifndef PTS_RECEIPT_H
#define PTS_RECEIPT_H

#include <stddef.h>
#include <jansson.h>
#include <openssl/evp.h>

struct receipt_fields {
	const char *partner, *id, *type, *member;
	long long points, balance, entry;
	const char *accepted_at, *period, *sha256_hex;
};

/* compact JWS, header {"alg":"EdDSA","kid":kid,"typ":"points-receipt+jwt"};
 * payload = exactly the ten fields, compact with sorted keys; malloc'd */
char *receipt_sign(EVP_PKEY *key, const char *kid,
    const struct receipt_fields *f);
/* RFC 7638 JWK thumbprint of an Ed25519 key: 43 chars + NUL; C_OK/C_ERR */
int receipt_key_kid(EVP_PKEY *key, char out[44]);
/* {"kty":"OKP","crv":"Ed25519","x":..,"kid":..,"alg":"EdDSA","use":"sig"} */
json_t *receipt_key_jwk(EVP_PKEY *key);
/* OKP/Ed25519 or EC/P-256 public JWK with kid (omitted if NULL) and alg */
json_t *jwk_from_public_pkey(EVP_PKEY *key, const char *kid);
/* PEM private key file, must be Ed25519; NULL with log_event on error */
EVP_PKEY *receipt_key_load(const char *path);
/* lower-case hex SHA-256 */
void sha256_hex(const void *data, size_t len, char out[65]);

#endif
