/* seal.h - the seal of a settled period (ledger.md §5): a SHA-256 chain
 * over the canonical lines of its entries, linked to the previous seal and
 * signed with the receipt key. Never signs a chain it did not recompute. */
#ifndef PTS_SEAL_H
#define PTS_SEAL_H

#include <stddef.h>
#include <libpq-fe.h>
#include <openssl/evp.h>

#define SEAL_HASH_BYTES 32
#define SEAL_HEX_CHARS  65   /* 64 hex digits and the NUL */
#define SEAL_JWS_TYP    "points-seal+jwt"

struct seal_fields {
	char period[64];
	long long count;
	long long first_entry;   /* 0 when count is 0 (then omitted) */
	long long last_entry;
	char chain[SEAL_HEX_CHARS];
	char prev[SEAL_HEX_CHARS];
	char batch_sha256[SEAL_HEX_CHARS];
};

/* h = SHA-256(h || line || "\n"); C_OK/C_ERR */
int seal_chain_step(unsigned char h[SEAL_HASH_BYTES], const char *line,
    size_t len);

/* lower-case hex of a hash; and back (C_ERR unless 64 hex digits) */
void seal_hex(const unsigned char h[SEAL_HASH_BYTES], char out[SEAL_HEX_CHARS]);
int seal_unhex(const char *hex, unsigned char h[SEAL_HASH_BYTES]);

/* the payload {batch_sha256, chain, count, first_entry, last_entry,
 * period, prev}: compact, sorted keys; malloc'd */
char *seal_payload(const struct seal_fields *f);

/* compact JWS, header {"alg":"EdDSA","kid":kid,"typ":"points-seal+jwt"};
 * malloc'd, NULL on failure */
char *seal_sign(EVP_PKEY *key, const char *kid, const struct seal_fields *f);

/* recomputes count, first/last entry and chain of period f->period from
 * f->prev and the database (inside the caller's transaction); C_OK, or
 * C_ERR with a one-line reason in err */
int seal_period_compute(PGconn *pg, struct seal_fields *f, char *err,
    size_t errcap);

#endif
