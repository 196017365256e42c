/* registry.h - an immutable in-memory snapshot of the partner registry
 * (partners, certificate fingerprints, signing keys, receipt keys) that
 * request threads read without touching the database. A reload builds a new
 * snapshot and swaps it in; readers hold a reference while they use one. */
#ifndef PTS_REGISTRY_H
#define PTS_REGISTRY_H

#include <stddef.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <openssl/evp.h>

#include "clearing/jws.h"
#include "errors.h"

enum reg_status { REG_PENDING, REG_ACTIVE, REG_SUSPENDED };

struct reg_partner {
	char id[65];
	enum reg_status status;
	size_t fps_first;        /* index into registry.fps */
	size_t fps_count;
};

struct reg_key {
	char kid[129];
	char partner[65];
	enum jws_alg alg;
	EVP_PKEY *pkey;
	long long valid_from_s;
	long long valid_until_s; /* 0: no end */
	long long revoked_at_s;  /* 0: not revoked */
};

struct registry {
	int refs;
	struct reg_partner *partners; /* sorted by id (bytewise) */
	size_t npartners;
	char (*fps)[65];
	size_t nfps;
	struct reg_key *keys;         /* sorted by kid (bytewise) */
	size_t nkeys;
	char *jwks;                   /* GET /v1/keys body: every receipt key */
	size_t jwks_len;
	long long loaded_at_s;
};

struct registry *registry_load(PGconn *db, char *err, size_t errcap);
void registry_publish(struct registry *r);
struct registry *registry_acquire(void);
void registry_release(struct registry *r);

/* who is this client certificate: ERR_OK, ERR_UNKNOWN_PARTNER or ERR_PARTNER_SUSPENDED */
enum err registry_check_client(const struct registry *r, const char *cn,
    const char *fp_hex);
/* a key usable now by this partner for this algorithm, or NULL (unknown_key) */
const struct reg_key *registry_find_key(const struct registry *r,
    const char *partner, const char *kid, enum jws_alg alg, long long now_s);

#endif
