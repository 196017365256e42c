/* cmd_init.c - `pointsctl init`: apply the embedded migrations of sql/ that the
 * database lacks, each in its own transaction, under an advisory lock.
 * Never edits an applied migration and never applies one twice. */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "db.h"
#include "errors.h"
#include "migrations.h"

/* any fixed key: concurrent inits of one database queue on it */
#define INIT_LOCK_KEY "7306603520393573"

static const char init_usage[] =
    "usage: pointsctl init [--db CONNINFO]\n"
    "\n"
    "Creates the schema, or applies the migrations the database lacks, each in\n"
    "its own transaction, in version order. Running it again changes nothing.\n"
    "The applied versions are kept in the table schema_migrations.\n";

static const char init_sql_table[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version int PRIMARY KEY,"
    " name text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";

/* the server role (created by 001) reads the version for /readyz */
static const char init_sql_grant[] =
    "DO $$ BEGIN"
    " IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pointsd') THEN"
    "  GRANT SELECT ON schema_migrations TO pointsd;"
    " END IF;"
    " END $$";

/* the migration with the lowest version above after, or NULL */
static const struct migration *
init_next_migration(int after)
{
	const struct migration *best = NULL;

	for (size_t i = 0; i < migrations_count; i++) {
		const struct migration *m = &migrations[i];
		if (m->version > after && (best == NULL || m->version < best->version))
			best = m;
	}
	return best;
}

/* is version v in schema_migrations? 1 yes, 0 no, C_ERR on failure */
static int
init_is_applied(PGconn *db, int v, struct db_err *e)
{
	char vbuf[16];
	const char *params[1] = { vbuf };
	PGresult *res;
	int found;

	snprintf(vbuf, sizeof(vbuf), "%d", v);
	res = db_query(db, "SELECT 1 FROM schema_migrations WHERE version = $1",
	    1, params, e);
	if (res == NULL)
		return C_ERR;
	found = PQntuples(res) > 0;
	PQclear(res);
	return found;
}

static int
init_apply_one(struct ctl *c, const struct migration *m)
{
	char vbuf[16], err[DB_ERR_CHARS];
	const char *params[2] = { vbuf, m->name };
	struct db_err e;

	snprintf(vbuf, sizeof(vbuf), "%d", m->version);
	if (db_begin(c->db) != C_OK) {
		return ctl_fail(CTL_EXIT_DB, "database unreachable: %s",
		    db_last_error(c->db, err, sizeof(err)));
	}
	/* the whole file at once: PQexec takes several statements */
	if (db_exec(c->db, m->sql) != C_OK) {
		db_last_error(c->db, err, sizeof(err));
		db_rollback(c->db);
		return ctl_fail(PQstatus(c->db) == CONNECTION_OK ? CTL_EXIT_INPUT :
		    CTL_EXIT_DB, "init: migration %s failed: %s", m->name, err);
	}
	if (db_command(c->db, "INSERT INTO schema_migrations (version, name) "
	    "VALUES ($1, $2)", 2, params, &e) != C_OK)
		return ctl_db_fail(c, "init", &e);
	if (db_command(c->db, init_sql_grant, 0, NULL, &e) != C_OK)
		return ctl_db_fail(c, "init", &e);
	if (db_commit(c->db, &e) != C_OK)
		return ctl_db_fail(c, "init", &e);
	printf("applied %s\n", m->name);
	return CTL_EXIT_OK;
}

static int
init_report_current(struct ctl *c)
{
	PGresult *res;
	struct db_err e;

	res = db_query(c->db, "SELECT coalesce(max(version), 0) "
	    "FROM schema_migrations", 0, NULL, &e);
	if (res == NULL)
		return ctl_db_fail(c, "init", &e);
	printf("schema is current (version %s)\n", PQgetvalue(res, 0, 0));
	PQclear(res);
	return CTL_EXIT_OK;
}

static int
init_run(struct ctl *c)
{
	const char *lock_params[1] = { INIT_LOCK_KEY };
	const struct migration *m;
	struct db_err e;
	int applied = 0, version = 0, st = CTL_EXIT_OK;

	if (db_command(c->db, "SELECT pg_advisory_lock($1::bigint)", 1,
	    lock_params, &e) != C_OK)
		return ctl_db_fail(c, "init", &e);
	if (db_command(c->db, init_sql_table, 0, NULL, &e) != C_OK)
		return ctl_db_fail(c, "init", &e);
	for (m = init_next_migration(version); m != NULL;
	    m = init_next_migration(version)) {
		int done = init_is_applied(c->db, m->version, &e);
		version = m->version;
		if (done == C_ERR)
			return ctl_db_fail(c, "init", &e);
		if (done)
			continue;
		st = init_apply_one(c, m);
		if (st != CTL_EXIT_OK)
			return st;
		applied++;
	}
	if (applied == 0)
		st = init_report_current(c);
	/* closing the connection releases the lock as well */
	(void)db_command(c->db, "SELECT pg_advisory_unlock($1::bigint)", 1,
	    lock_params, NULL);
	return st;
}

int
cmd_init(int argc, char **argv, struct ctl *c)
{
	int st;

	st = ctl_parse_plain(argc, argv, c, init_usage, 0, 0);
	if (st != CTL_CONTINUE)
		return st;
	if (migrations_count == 0)
		return ctl_fail(CTL_EXIT_INPUT, "init: no migrations built in");
	if (ctl_db(c) != C_OK)
		return CTL_EXIT_DB;
	return init_run(c);
}
