/* dbconn.h - one libpq connection owned by one thread, reconnected on demand
 * with a short back-off, with the server's session settings applied. */
#ifndef PTS_DBCONN_H
#define PTS_DBCONN_H

#include <libpq-fe.h>

struct dbconn {
	PGconn *pg;
	const char *name;         /* application_name suffix, for pg_stat_activity */
	long long last_fail_us;
	long long reconnects;
	long long replanned_us;   /* last DISCARD PLANS (ledger.c) */
	unsigned prepared;        /* which posting statements are prepared, a bit each (ledger.c) */
};

/* a live connection, or NULL while the database is unreachable */
PGconn *dbconn_get(struct dbconn *dc);
/* after an error: drop the connection if it is no longer usable */
void dbconn_check(struct dbconn *dc);
void dbconn_close(struct dbconn *dc);

#endif
