/* settle.h - settling periods: cut-over under the exclusive posting lock,
 * the batch (computed by settle_batch() in SQL) and the seal, stored in
 * one transaction. Never recomputes or changes a batch once written. */
#ifndef PTS_SETTLE_H
#define PTS_SETTLE_H

#include <stddef.h>
#include <libpq-fe.h>
#include <openssl/evp.h>

/* results besides C_OK (0) and C_ERR (-1): a fact the operator must see,
 * not a failure of the machinery (reason in err) */
#define SETTLE_OPEN     1   /* the period has not ended yet */
#define SETTLE_UNKNOWN  2   /* no such period */
#define SETTLE_EARLIER  3   /* an earlier period is not settled yet */
#define SETTLE_UNPRICED 4   /* an entry of the period has no price */

/* settles one period: closes it (waits for postings in flight), writes its
 * batch and seal, or returns the existing batch if it is settled already.
 * C_OK with *batch_id_out set, C_ERR, or a SETTLE_* refusal; err holds a
 * one-line reason. The connection must be idle (no open transaction). */
int settle_period(PGconn *pg, const char *label, EVP_PKEY *key,
    const char *kid, long long *batch_id_out, char *err, size_t errcap);

/* settles, oldest first, every period whose end plus the grace delay has
 * passed and that has no batch, if this session wins the settlement lock
 * (pg_try_advisory_lock: of several instances one does it, the others
 * skip). Returns the number of periods settled (0 if the lock was busy),
 * or -1 with a one-line reason in err. */
int settle_due_periods(PGconn *pg, EVP_PKEY *receipt_key, const char *kid,
    char *err, size_t errcap);

#endif
