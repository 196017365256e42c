/* registry.c - load the partner registry into an immutable snapshot.
 * Owns: the snapshot's memory and its reference count. Never writes the
 * database; reads it only in registry_load (control thread). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/pem.h>

#include "clearing/receipt.h"
#include "log.h"
#include "pts_assert.h"
#include "registry.h"

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static struct registry *registry_current;

static void
registry_free(struct registry *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->nkeys; i++)
		EVP_PKEY_free(r->keys[i].pkey);
	free(r->keys);
	free(r->partners);
	free(r->fps);
	free(r->jwks);
	free(r);
}

static long long
registry_col_ll(PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return 0;
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static PGresult *
registry_query(PGconn *db, const char *sql, char *err, size_t errcap)
{
	PGresult *res = PQexec(db, sql);

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(err, errcap, "registry query failed: %s", PQerrorMessage(db));
		PQclear(res);
		return NULL;
	}
	return res;
}

static int
registry_load_partners(struct registry *r, PGconn *db, char *err, size_t errcap)
{
	PGresult *res = NULL;
	int rc = C_ERR;

	res = registry_query(db,
	    "SELECT p.id, p.status, c.fingerprint FROM partners p "
	    "LEFT JOIN partner_certs c ON c.partner_id = p.id "
	    "ORDER BY p.id COLLATE \"C\", c.fingerprint", err, errcap);
	if (res == NULL)
		goto out;
	r->partners = calloc((size_t)PQntuples(res) + 1, sizeof(*r->partners));
	r->fps = calloc((size_t)PQntuples(res) + 1, sizeof(*r->fps));
	if (r->partners == NULL || r->fps == NULL)
		goto out;
	for (int i = 0; i < PQntuples(res); i++) {
		const char *id = PQgetvalue(res, i, 0);
		const char *st = PQgetvalue(res, i, 1);
		struct reg_partner *p;

		if (r->npartners == 0 || strcmp(r->partners[r->npartners - 1].id, id) != 0) {
			p = &r->partners[r->npartners++];
			snprintf(p->id, sizeof(p->id), "%s", id);
			p->status = strcmp(st, "active") == 0 ? REG_ACTIVE :
			    strcmp(st, "suspended") == 0 ? REG_SUSPENDED : REG_PENDING;
			p->fps_first = r->nfps;
		}
		p = &r->partners[r->npartners - 1];
		if (!PQgetisnull(res, i, 2)) {
			snprintf(r->fps[r->nfps++], 65, "%s", PQgetvalue(res, i, 2));
			p->fps_count++;
		}
	}
	rc = C_OK;
out:
	PQclear(res);
	return rc;
}

static int
registry_load_keys(struct registry *r, PGconn *db, char *err, size_t errcap)
{
	PGresult *res = NULL;
	int rc = C_ERR;

	res = registry_query(db,
	    "SELECT kid, partner_id, alg, public_pem, "
	    "extract(epoch FROM valid_from)::bigint, extract(epoch FROM valid_until)::bigint, "
	    "extract(epoch FROM revoked_at)::bigint "
	    "FROM signing_keys ORDER BY kid COLLATE \"C\"", err, errcap);
	if (res == NULL)
		goto out;
	r->keys = calloc((size_t)PQntuples(res) + 1, sizeof(*r->keys));
	if (r->keys == NULL)
		goto out;
	for (int i = 0; i < PQntuples(res); i++) {
		struct reg_key *k = &r->keys[r->nkeys];
		const char *pem = PQgetvalue(res, i, 3);
		BIO *bio = BIO_new_mem_buf(pem, -1);

		k->pkey = bio != NULL ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
		BIO_free(bio);
		if (k->pkey == NULL) {
			char b[200];
			log_event(LOG_ERROR, "registry_key_unreadable", "\"kid\":%s",
			    log_json_str(b, sizeof(b), PQgetvalue(res, i, 0)));
			continue;
		}
		snprintf(k->kid, sizeof(k->kid), "%s", PQgetvalue(res, i, 0));
		snprintf(k->partner, sizeof(k->partner), "%s", PQgetvalue(res, i, 1));
		k->alg = strcmp(PQgetvalue(res, i, 2), "EdDSA") == 0 ? JWS_ALG_EDDSA : JWS_ALG_ES256;
		k->valid_from_s = registry_col_ll(res, i, 4);
		k->valid_until_s = registry_col_ll(res, i, 5);
		k->revoked_at_s = registry_col_ll(res, i, 6);
		r->nkeys++;
	}
	rc = C_OK;
out:
	PQclear(res);
	return rc;
}

static int
registry_load_jwks(struct registry *r, PGconn *db, char *err, size_t errcap)
{
	PGresult *res = NULL;
	json_t *set = json_object(), *arr = json_array();
	int rc = C_ERR;

	res = registry_query(db,
	    "SELECT kid, public_pem FROM receipt_keys ORDER BY retired_at DESC NULLS FIRST, created_at DESC",
	    err, errcap);
	if (res == NULL || set == NULL || arr == NULL)
		goto out;
	for (int i = 0; i < PQntuples(res); i++) {
		BIO *bio = BIO_new_mem_buf(PQgetvalue(res, i, 1), -1);
		EVP_PKEY *pk = bio != NULL ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
		json_t *jwk = pk != NULL ? jwk_from_public_pkey(pk, PQgetvalue(res, i, 0)) : NULL;

		BIO_free(bio);
		EVP_PKEY_free(pk);
		if (jwk != NULL)
			json_array_append_new(arr, jwk);
	}
	json_object_set(set, "keys", arr);
	r->jwks = json_dumps(set, JSON_COMPACT);
	if (r->jwks == NULL)
		goto out;
	r->jwks_len = strlen(r->jwks);
	rc = C_OK;
out:
	json_decref(arr);
	json_decref(set);
	PQclear(res);
	return rc;
}

struct registry *
registry_load(PGconn *db, char *err, size_t errcap)
{
	struct registry *r = calloc(1, sizeof(*r));
	PGresult *res;

	if (r == NULL)
		return NULL;
	r->refs = 1;
	res = PQexec(db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	PQclear(res);
	if (registry_load_partners(r, db, err, errcap) != C_OK ||
	    registry_load_keys(r, db, err, errcap) != C_OK ||
	    registry_load_jwks(r, db, err, errcap) != C_OK) {
		PQclear(PQexec(db, "ROLLBACK"));
		registry_free(r);
		return NULL;
	}
	PQclear(PQexec(db, "COMMIT"));
	r->loaded_at_s = (long long)time(NULL);
	return r;
}

void
registry_publish(struct registry *r)
{
	struct registry *old;

	PTS_ASSERT(r != NULL && r->refs == 1);
	pthread_mutex_lock(&registry_mu);
	old = registry_current;
	registry_current = r;
	pthread_mutex_unlock(&registry_mu);
	registry_release(old);
}

struct registry *
registry_acquire(void)
{
	struct registry *r;

	pthread_mutex_lock(&registry_mu);
	r = registry_current;
	if (r != NULL)
		r->refs++;
	pthread_mutex_unlock(&registry_mu);
	return r;
}

void
registry_release(struct registry *r)
{
	int last;

	if (r == NULL)
		return;
	pthread_mutex_lock(&registry_mu);
	PTS_ASSERT(r->refs > 0);
	last = --r->refs == 0;
	pthread_mutex_unlock(&registry_mu);
	if (last)
		registry_free(r);
}

static int
registry_cmp_partner(const void *key, const void *elem)
{
	return strcmp((const char *)key, ((const struct reg_partner *)elem)->id);
}

static int
registry_cmp_key(const void *key, const void *elem)
{
	return strcmp((const char *)key, ((const struct reg_key *)elem)->kid);
}

enum err
registry_check_client(const struct registry *r, const char *cn, const char *fp_hex)
{
	const struct reg_partner *p;

	p = bsearch(cn, r->partners, r->npartners, sizeof(*p), registry_cmp_partner);
	if (p == NULL)
		return ERR_UNKNOWN_PARTNER;
	for (size_t i = 0; i < p->fps_count; i++) {
		if (strcmp(r->fps[p->fps_first + i], fp_hex) == 0)
			return p->status == REG_ACTIVE ? ERR_OK : ERR_PARTNER_SUSPENDED;
	}
	return ERR_UNKNOWN_PARTNER;
}

const struct reg_key *
registry_find_key(const struct registry *r, const char *partner, const char *kid,
    enum jws_alg alg, long long now_s)
{
	const struct reg_key *k;

	k = bsearch(kid, r->keys, r->nkeys, sizeof(*k), registry_cmp_key);
	if (k == NULL || strcmp(k->partner, partner) != 0 || k->alg != alg)
		return NULL;
	if (now_s < k->valid_from_s)
		return NULL;
	if (k->valid_until_s != 0 && now_s >= k->valid_until_s)
		return NULL;
	if (k->revoked_at_s != 0 && now_s >= k->revoked_at_s)
		return NULL;
	return k;
}
