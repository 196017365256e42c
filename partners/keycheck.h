/* keycheck.h - checks of partner public keys before they are registered.
 * Owns: the accepted key types and point checks. Never registers anything. */
#ifndef PTS_KEYCHECK_H
#define PTS_KEYCHECK_H

#include <stddef.h>
#include <openssl/evp.h>

#include "clearing/jws.h"

/* parses one PEM SubjectPublicKeyInfo (Ed25519 or EC P-256 only); on
 * success *out (caller frees) and *alg; on failure a static one-line
 * *reason; C_OK or C_ERR */
int keycheck_load_public_pem(const char *pem, size_t pem_len, EVP_PKEY **out,
    enum jws_alg *alg, const char **reason);
/* C_OK if pk is a canonical encoding (y < p, not x = 0 with the sign bit
 * set) of a point of prime order L: not one of the 8 small-order points and
 * without a small-order component */
int keycheck_ed25519_raw(const unsigned char pk[32], const char **reason);

#endif
