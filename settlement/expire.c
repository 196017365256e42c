/* expire.c - runs lot expiry: the C side of expire_lots() and
 * expire_daily() (sql/004_expiry_audit.sql), one transaction per run.
 * Never computes which lots expire itself: the SQL does, under its locks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "errors.h"
#include "expire.h"
#include "log.h"

/* sets the out values from row 0, columns col, col + 1 */
static void
expire_read_counts(const PGresult *res, int col, long long *entries_out,
    long long *points_out)
{
	if (entries_out != NULL)
		*entries_out = strtoll(PQgetvalue(res, 0, col), NULL, 10);
	if (points_out != NULL)
		*points_out = strtoll(PQgetvalue(res, 0, col + 1), NULL, 10);
}

int
expire_run(PGconn *pg, const char *as_of_or_null, long long *entries_out,
    long long *points_out, char *err, size_t errcap)
{
	const char *params[1] = { as_of_or_null };
	struct db_err e;
	PGresult *res;

	err[0] = '\0';
	if (entries_out != NULL)
		*entries_out = 0;
	if (points_out != NULL)
		*points_out = 0;
	if (db_begin(pg) != C_OK) {
		snprintf(err, errcap, "expire: cannot begin a transaction");
		return C_ERR;
	}
	res = db_query(pg, "SELECT entries, points FROM expire_lots($1::timestamptz)",
	    1, params, &e);
	if (res == NULL) {
		db_rollback(pg);
		snprintf(err, errcap, "expire: %s", e.msg);
		return strcmp(e.sqlstate, "22023") == 0 && strstr(e.msg, "future") != NULL ?
		    EXPIRE_FUTURE : C_ERR;
	}
	expire_read_counts(res, 0, entries_out, points_out);
	PQclear(res);
	if (db_commit(pg, &e) != C_OK) {
		snprintf(err, errcap, "expire: commit: %s", e.msg);
		return C_ERR;
	}
	return C_OK;
}

int
expire_due(PGconn *pg, char *err, size_t errcap)
{
	struct db_err e;
	PGresult *res;
	long long entries = 0, points = 0;
	int ran;

	err[0] = '\0';
	if (db_begin(pg) != C_OK) {
		snprintf(err, errcap, "expire: cannot begin a transaction");
		return C_ERR;
	}
	res = db_query(pg, "SELECT ran, entries, points FROM expire_daily()", 0,
	    NULL, &e);
	if (res == NULL) {
		db_rollback(pg);
		snprintf(err, errcap, "expire: %s", e.msg);
		return C_ERR;
	}
	ran = PQgetvalue(res, 0, 0)[0] == 't';
	expire_read_counts(res, 1, &entries, &points);
	PQclear(res);
	if (db_commit(pg, &e) != C_OK) {
		snprintf(err, errcap, "expire: commit: %s", e.msg);
		return C_ERR;
	}
	if (ran)
		log_event(LOG_INFO, "expired", "\"entries\":%lld,\"points\":%lld",
		    entries, points);
	return ran ? 1 : 0;
}
