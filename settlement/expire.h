/* expire.h - lot expiry (ledger.md §2): the remaining points of lots past
 * expires_at become breakage, one entry per member per run, in SQL
 * (expire_lots() of sql/004). Never posts anything else, never backdates. */
#ifndef PTS_EXPIRE_H
#define PTS_EXPIRE_H

#include <stddef.h>
#include <libpq-fe.h>

/* result besides C_OK and C_ERR: as_of is later than the database clock */
#define EXPIRE_FUTURE 1

/* runs expiry at as_of (a timestamptz text; NULL: now) in a transaction
 * of its own; the connection must be idle. *entries_out and *points_out
 * (may be NULL) get what was expired. C_OK, EXPIRE_FUTURE, or C_ERR; err
 * holds a one-line reason. */
int expire_run(PGconn *pg, const char *as_of_or_null, long long *entries_out,
    long long *points_out, char *err, size_t errcap);

/* pointsd's daily job: runs expiry at now if this session wins the expiry
 * lock (pg_try_advisory_xact_lock) and no run with as_of at or after the
 * start of today (program time zone) exists. Returns 1 when it ran (logs
 * an "expired" event with entries and points), 0 when it was not due or
 * another session was running it, C_ERR (-1) with a reason in err. */
int expire_due(PGconn *pg, char *err, size_t errcap);

#endif
