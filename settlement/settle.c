/* settle.c - settles periods: cut-over, batch, seal (settlement.md §3,
 * ledger.md §3 and §5). Owns the order of those steps and their
 * transactions. Never writes a batch without its seal, nor the reverse. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

#include "db.h"
#include "errors.h"
#include "seal.h"
#include "settle.h"

static const char settle_zero_hash[] =
    "0000000000000000000000000000000000000000000000000000000000000000";

/* one-line reason from a failed statement; a refusal code from its SQLSTATE */
static int
settle_fail(PGconn *pg, const char *what, const struct db_err *e, char *err,
    size_t errcap)
{
	if (PQtransactionStatus(pg) != PQTRANS_IDLE)
		db_rollback(pg);
	snprintf(err, errcap, "%s: %s", what, e->msg);
	if (strcmp(e->sqlstate, "PT001") == 0)
		return SETTLE_OPEN;
	if (strcmp(e->sqlstate, "PT002") == 0)
		return SETTLE_UNKNOWN;
	if (strcmp(e->sqlstate, "PT003") == 0)
		return SETTLE_EARLIER;
	if (strcmp(e->sqlstate, "PT004") == 0)
		return SETTLE_UNPRICED;
	return C_ERR;
}

/* the stored batch of a period: 1 found, 0 none, C_ERR */
static int
settle_find_batch(PGconn *pg, const char *label, long long *id,
    struct db_err *e)
{
	const char *params[1] = { label };
	PGresult *res = db_query(pg, "SELECT id FROM settlement_batches "
	    "WHERE period = $1", 1, params, e);
	int found;

	if (res == NULL)
		return C_ERR;
	found = PQntuples(res) == 1;
	if (found)
		*id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return found;
}

/* the receipt key's public half, so that exports carry every key used */
static int
settle_publish_key(PGconn *pg, EVP_PKEY *key, const char *kid,
    struct db_err *e)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem = NULL, *copy = NULL;
	long n;
	int rc = C_ERR;

	snprintf(e->msg, sizeof(e->msg), "cannot encode the receipt key");
	e->sqlstate[0] = '\0';
	if (bio == NULL || PEM_write_bio_PUBKEY(bio, key) != 1)
		goto out;
	n = BIO_get_mem_data(bio, &pem);
	copy = n > 0 ? strndup(pem, (size_t)n) : NULL;
	if (copy == NULL)
		goto out;
	const char *params[2] = { kid, copy };
	rc = db_command(pg, "INSERT INTO receipt_keys (kid, public_pem) "
	    "VALUES ($1, $2) ON CONFLICT (kid) DO NOTHING", 2, params, e);
out:
	free(copy);
	BIO_free(bio);
	return rc;
}

/* batch sha256, whether a seal exists, and the previous period's chain */
static int
settle_seal_inputs(PGconn *pg, long long batch_id, struct seal_fields *f,
    int *sealed, struct db_err *e)
{
	char idbuf[24];
	const char *params[1] = { idbuf };
	PGresult *res;

	snprintf(idbuf, sizeof(idbuf), "%lld", batch_id);
	res = db_query(pg, "SELECT b.period, b.sha256, "
	    "EXISTS (SELECT 1 FROM period_seals s WHERE s.period = b.period), "
	    "(SELECT s.chain FROM period_seals s JOIN periods p ON p.label = s.period "
	    " WHERE p.starts_at < (SELECT starts_at FROM periods WHERE label = b.period) "
	    " ORDER BY p.starts_at DESC LIMIT 1) "
	    "FROM settlement_batches b WHERE b.id = $1::bigint", 1, params, e);
	if (res == NULL)
		return C_ERR;
	if (PQntuples(res) != 1) {
		PQclear(res);
		snprintf(e->msg, sizeof(e->msg), "batch %lld vanished", batch_id);
		return C_ERR;
	}
	snprintf(f->period, sizeof(f->period), "%s", PQgetvalue(res, 0, 0));
	snprintf(f->batch_sha256, sizeof(f->batch_sha256), "%s", PQgetvalue(res, 0, 1));
	*sealed = PQgetvalue(res, 0, 2)[0] == 't';
	snprintf(f->prev, sizeof(f->prev), "%s", PQgetisnull(res, 0, 3) ?
	    settle_zero_hash : PQgetvalue(res, 0, 3));
	PQclear(res);
	return C_OK;
}

static int
settle_store_seal(PGconn *pg, long long batch_id, const struct seal_fields *f,
    const char *seal, const char *kid, struct db_err *e)
{
	char id[24], count[24], first[24], last[24];
	const char *params[10] = { f->period, id, count, f->count ? first : NULL,
	    f->count ? last : NULL, f->chain, f->prev, f->batch_sha256, seal, kid };

	snprintf(id, sizeof(id), "%lld", batch_id);
	snprintf(count, sizeof(count), "%lld", f->count);
	snprintf(first, sizeof(first), "%lld", f->first_entry);
	snprintf(last, sizeof(last), "%lld", f->last_entry);
	return db_command(pg, "INSERT INTO period_seals (period, batch_id, count, "
	    "first_entry, last_entry, chain, prev, batch_sha256, seal, kid) VALUES "
	    "($1, $2::bigint, $3::bigint, $4::bigint, $5::bigint, $6, $7, $8, $9, $10)",
	    10, params, e);
}

/* the second transaction: batch, seal, commit */
static int
settle_write(PGconn *pg, const char *label, EVP_PKEY *key, const char *kid,
    long long *batch_id_out, char *err, size_t errcap)
{
	const char *params[1] = { label };
	struct seal_fields f;
	struct db_err e;
	PGresult *res;
	char *seal = NULL;
	int sealed = 0, rc;

	memset(&f, 0, sizeof(f));
	if (db_begin(pg) != C_OK) {
		snprintf(err, errcap, "settle: cannot begin: %s", PQerrorMessage(pg));
		return C_ERR;
	}
	res = db_query(pg, "SELECT settle_batch($1)", 1, params, &e);
	if (res == NULL)
		return settle_fail(pg, "settle", &e, err, errcap);
	*batch_id_out = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	if (settle_seal_inputs(pg, *batch_id_out, &f, &sealed, &e) != C_OK)
		return settle_fail(pg, "settle", &e, err, errcap);
	if (!sealed) {
		if (settle_publish_key(pg, key, kid, &e) != C_OK)
			return settle_fail(pg, "settle", &e, err, errcap);
		if (seal_period_compute(pg, &f, err, errcap) != C_OK) {
			db_rollback(pg);
			return C_ERR;
		}
		seal = seal_sign(key, kid, &f);
		if (seal == NULL) {
			db_rollback(pg);
			snprintf(err, errcap, "settle: cannot sign the seal of %s", label);
			return C_ERR;
		}
		rc = settle_store_seal(pg, *batch_id_out, &f, seal, kid, &e);
		free(seal);
		if (rc != C_OK)
			return settle_fail(pg, "settle", &e, err, errcap);
	}
	if (db_commit(pg, &e) != C_OK)
		return settle_fail(pg, "settle", &e, err, errcap);
	return C_OK;
}

int
settle_period(PGconn *pg, const char *label, EVP_PKEY *key, const char *kid,
    long long *batch_id_out, char *err, size_t errcap)
{
	const char *params[1] = { label };
	struct db_err e;
	int found;

	err[0] = '\0';
	*batch_id_out = 0;
	found = settle_find_batch(pg, label, batch_id_out, &e);
	if (found == C_ERR)
		return settle_fail(pg, "settle", &e, err, errcap);
	if (found == 1)
		return C_OK;
	/* the cut-over commits at once: postings wait while it is held */
	if (db_begin(pg) != C_OK) {
		snprintf(err, errcap, "settle: cannot begin: %s", PQerrorMessage(pg));
		return C_ERR;
	}
	if (db_command(pg, "SELECT settle_close_period($1)", 1, params, &e) != C_OK)
		return settle_fail(pg, "settle", &e, err, errcap);
	if (db_commit(pg, &e) != C_OK)
		return settle_fail(pg, "settle", &e, err, errcap);
	return settle_write(pg, label, key, kid, batch_id_out, err, errcap);
}

/* labels of the periods due, oldest first */
static PGresult *
settle_due_labels(PGconn *pg, struct db_err *e)
{
	return db_query(pg, "SELECT p.label FROM periods p, settings s "
	    "WHERE p.ends_at + make_interval(secs => s.grace_seconds) <= clock_timestamp() "
	    "AND NOT EXISTS (SELECT 1 FROM settlement_batches b WHERE b.period = p.label) "
	    "ORDER BY p.starts_at", 0, NULL, e);
}

int
settle_due_periods(PGconn *pg, EVP_PKEY *receipt_key, const char *kid,
    char *err, size_t errcap)
{
	PGresult *res = NULL;
	struct db_err e;
	int settled = 0, won;

	err[0] = '\0';
	res = db_query(pg, "SELECT pg_try_advisory_lock(settle_lock_key())", 0, NULL, &e);
	if (res == NULL) {
		snprintf(err, errcap, "settle: %s", e.msg);
		return -1;
	}
	won = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	if (!won)
		return 0;
	res = settle_due_labels(pg, &e);
	if (res == NULL) {
		snprintf(err, errcap, "settle: %s", e.msg);
		settled = -1;
		goto out;
	}
	for (int r = 0; r < PQntuples(res); r++) {
		long long id = 0;
		if (settle_period(pg, PQgetvalue(res, r, 0), receipt_key, kid, &id,
		    err, errcap) != C_OK) {
			settled = -1;
			break;
		}
		settled++;
	}
out:
	PQclear(res);
	PQclear(PQexec(pg, "SELECT pg_advisory_unlock(settle_lock_key())"));
	return settled;
}
