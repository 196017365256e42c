/* db.h - small libpq helpers shared by pointsctl and pointsd: connecting by
 * the documented rules, running statements with one-line errors.
 * Never builds SQL from values: every value goes as a parameter. */
#ifndef PTS_DB_H
#define PTS_DB_H

#include <stddef.h>
#include <libpq-fe.h>

#define DB_DEFAULT_CONNINFO "host=127.0.0.1 port=54329 dbname=points user=postgres"
#define DB_DEFAULT_DBNAME   "points"
#define DB_CONNECT_TIMEOUT_S "10"
#define DB_ERR_CHARS        512

/* why a statement failed: one line, its SQLSTATE and constraint if any */
struct db_err {
	char msg[DB_ERR_CHARS];
	char sqlstate[6];
	char constraint[64];
	int connection_lost;  /* the server went away (SQLSTATE class 08, or no connection) */
};

/* conninfo, or NULL for: the PG* environment if PGHOST, PGDATABASE, PGPORT or
 * PGSERVICE is set (database "points" unless PGDATABASE says otherwise),
 * else DB_DEFAULT_CONNINFO. Notices are discarded. NULL on failure with a
 * one-line reason in err. */
PGconn *db_connect(const char *conninfo, char *err, size_t errcap);

/* the development default, DB_DEFAULT_CONNINFO */
const char *db_default_conninfo(void);

/* runs sql with text parameters (NULL = SQL NULL). Returns the result when
 * its status is PGRES_COMMAND_OK or PGRES_TUPLES_OK (caller PQclear()s it),
 * else NULL with the reason in *e (e may be NULL). */
PGresult *db_query(PGconn *db, const char *sql, int nparams,
    const char *const *params, struct db_err *e);

/* db_query for statements whose rows are not needed; C_OK/C_ERR */
int db_command(PGconn *db, const char *sql, int nparams,
    const char *const *params, struct db_err *e);

/* runs parameterless sql (may hold several statements); C_OK/C_ERR, the
 * reason is then db_last_error() */
int db_exec(PGconn *db, const char *sql);

/* the connection's last error message as one line, into buf */
const char *db_last_error(PGconn *db, char *buf, size_t cap);

/* BEGIN / COMMIT / ROLLBACK; C_OK/C_ERR */
int db_begin(PGconn *db);
int db_commit(PGconn *db, struct db_err *e);
void db_rollback(PGconn *db);

/* is e a unique violation (23505), foreign key violation (23503),
 * check violation (23514)? */
int db_err_is(const struct db_err *e, const char *sqlstate);

#endif
