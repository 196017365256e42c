/* db.c - libpq connection rules and statement wrappers with one-line errors.
 * Owns: nothing but the mechanics; never holds SQL of any module and never
 * interpolates values into SQL. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "errors.h"

static void
db_notice_discard(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* copies the first non-empty line of msg into buf, trimmed */
static void
db_one_line(const char *msg, char *buf, size_t cap)
{
	size_t n = 0;

	if (cap == 0)
		return;
	buf[0] = '\0';
	if (msg == NULL)
		return;
	while (*msg == '\n' || *msg == ' ' || *msg == '\t')
		msg++;
	while (msg[n] != '\0' && msg[n] != '\n' && n + 1 < cap) {
		buf[n] = msg[n];
		n++;
	}
	while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t' ||
	    buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
}

const char *
db_default_conninfo(void)
{
	return DB_DEFAULT_CONNINFO;
}

static int
db_env_set(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0';
}

PGconn *
db_connect(const char *conninfo, char *err, size_t errcap)
{
	const char *keys[3] = { "connect_timeout", "dbname", NULL };
	const char *vals[3] = { DB_CONNECT_TIMEOUT_S, NULL, NULL };
	PGconn *db;

	if (conninfo != NULL) {
		vals[1] = conninfo;
	} else if (db_env_set("PGHOST") || db_env_set("PGDATABASE") ||
	    db_env_set("PGPORT") || db_env_set("PGSERVICE")) {
		/* libpq fills in the rest from the environment */
		vals[1] = db_env_set("PGDATABASE") ? "" : DB_DEFAULT_DBNAME;
	} else {
		vals[1] = DB_DEFAULT_CONNINFO;
	}
	/* expand_dbname: a conninfo or URI in dbname is expanded, and its own
	 * connect_timeout (listed later) wins over ours */
	db = PQconnectdbParams(keys, vals, 1);
	if (db == NULL) {
		snprintf(err, errcap, "out of memory");
		return NULL;
	}
	if (PQstatus(db) != CONNECTION_OK) {
		db_one_line(PQerrorMessage(db), err, errcap);
		PQfinish(db);
		return NULL;
	}
	PQsetNoticeProcessor(db, db_notice_discard, NULL);
	return db;
}

static void
db_err_fill(PGconn *db, const PGresult *res, struct db_err *e)
{
	const char *f;

	if (e == NULL)
		return;
	memset(e, 0, sizeof(*e));
	f = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	db_one_line(f != NULL ? f : PQerrorMessage(db), e->msg, sizeof(e->msg));
	if (e->msg[0] == '\0')
		snprintf(e->msg, sizeof(e->msg), "unexpected result");
	f = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	if (f != NULL)
		snprintf(e->sqlstate, sizeof(e->sqlstate), "%s", f);
	f = res != NULL ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
	if (f != NULL)
		snprintf(e->constraint, sizeof(e->constraint), "%s", f);
	e->connection_lost = PQstatus(db) != CONNECTION_OK ||
	    strncmp(e->sqlstate, "08", 2) == 0;
}

PGresult *
db_query(PGconn *db, const char *sql, int nparams, const char *const *params,
    struct db_err *e)
{
	PGresult *res;
	ExecStatusType st;

	res = PQexecParams(db, sql, nparams, NULL, params, NULL, NULL, 0);
	st = PQresultStatus(res);
	if (res != NULL && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK))
		return res;
	db_err_fill(db, res, e);
	PQclear(res);
	return NULL;
}

int
db_command(PGconn *db, const char *sql, int nparams,
    const char *const *params, struct db_err *e)
{
	PGresult *res = db_query(db, sql, nparams, params, e);

	if (res == NULL)
		return C_ERR;
	PQclear(res);
	return C_OK;
}

int
db_exec(PGconn *db, const char *sql)
{
	PGresult *res = PQexec(db, sql);
	ExecStatusType st = PQresultStatus(res);
	int rc = (res != NULL && (st == PGRES_COMMAND_OK ||
	    st == PGRES_TUPLES_OK)) ? C_OK : C_ERR;

	PQclear(res);
	return rc;
}

const char *
db_last_error(PGconn *db, char *buf, size_t cap)
{
	const char *msg = PQerrorMessage(db);

	/* libpq prefixes the severity: "ERROR:  relation ... does not exist" */
	if (strncmp(msg, "ERROR:  ", 8) == 0 || strncmp(msg, "FATAL:  ", 8) == 0)
		msg += 8;
	db_one_line(msg, buf, cap);
	return buf;
}

int
db_begin(PGconn *db)
{
	return db_exec(db, "BEGIN");
}

int
db_commit(PGconn *db, struct db_err *e)
{
	return db_command(db, "COMMIT", 0, NULL, e);
}

void
db_rollback(PGconn *db)
{
	if (PQtransactionStatus(db) != PQTRANS_IDLE)
		(void)db_exec(db, "ROLLBACK");
}

int
db_err_is(const struct db_err *e, const char *sqlstate)
{
	return e != NULL && strcmp(e->sqlstate, sqlstate) == 0;
}
