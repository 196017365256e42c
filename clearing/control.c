/* control.c - the control thread: keeps the registry snapshot fresh (at
 * start, on SIGHUP, on NOTIFY pointsd_registry from pointsctl), reloads the
 * TLS context on SIGHUP, and runs the server's periodic jobs.
 * Never serves a request and never posts a message. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/pem.h>

#include "clearing/receipt.h"
#include "control.h"
#include "dbconn.h"
#include "log.h"
#include "metrics.h"
#include "migrations.h"
#include "partners/registry.h"
#include "server.h"
#include "settlement/expire.h"
#include "settlement/settle.h"

static int control_pipe[2] = { -1, -1 };
static int control_listening;

int
control_init(void)
{
	return pipe2(control_pipe, O_CLOEXEC | O_NONBLOCK) == 0 ? C_OK : C_ERR;
}

void
control_wake(void)
{
	(void)!write(control_pipe[1], "w", 1);
}

int
control_reload_registry(PGconn *pg)
{
	char err[512], e[600];
	struct registry *r = registry_load(pg, err, sizeof(err));

	if (r == NULL) {
		log_event(LOG_ERROR, "registry_reload_failed", "\"error\":%s",
		    log_json_str(e, sizeof(e), err));
		return C_ERR;
	}
	log_event(LOG_INFO, "registry_loaded", "\"partners\":%zu,\"keys\":%zu",
	    r->npartners, r->nkeys);
	registry_publish(r);
	return C_OK;
}

/* the receipt key's public half is published in receipt_keys before any
 * receipt is signed with it; existing rows are never changed */
int
control_publish_receipt_key(PGconn *pg)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem = NULL;
	long n;
	const char *vals[2];
	PGresult *res;
	int rc = C_ERR;

	if (bio == NULL || PEM_write_bio_PUBKEY(bio, g_server.receipt_key) != 1)
		goto out;
	n = BIO_get_mem_data(bio, &pem);
	vals[0] = g_server.receipt_kid;
	vals[1] = strndup(pem, (size_t)n);
	res = PQexecParams(pg, "INSERT INTO receipt_keys (kid, public_pem) VALUES ($1, $2) "
	    "ON CONFLICT (kid) DO NOTHING", 2, NULL, vals, NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_COMMAND_OK)
		rc = C_OK;
	else
		log_event(LOG_ERROR, "receipt_key_publish_failed", NULL);
	PQclear(res);
	free((char *)vals[1]);
out:
	BIO_free(bio);
	return rc;
}

/* refuses a database that would lose acknowledged commits */
int
control_check_durability(PGconn *pg, char *err, size_t errcap)
{
	PGresult *res = PQexec(pg, "SELECT current_setting('fsync'), "
	    "current_setting('synchronous_commit'), "
	    "(SELECT max(version) FROM schema_migrations)");
	int rc = C_ERR;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		snprintf(err, errcap, "cannot read settings: %s", PQerrorMessage(pg));
		goto out;
	}
	if (strtol(PQgetvalue(res, 0, 2), NULL, 10) < migrations_latest()) {
		snprintf(err, errcap, "schema version %s is older than %d: run pointsctl init",
		    PQgetvalue(res, 0, 2), migrations_latest());
		goto out;
	}
	if ((strcmp(PQgetvalue(res, 0, 0), "on") != 0 ||
	    strcmp(PQgetvalue(res, 0, 1), "off") == 0 ||
	    strcmp(PQgetvalue(res, 0, 1), "local") == 0) && !g_server.conf.unsafe_no_durability) {
		snprintf(err, errcap, "database is not durable (fsync=%s synchronous_commit=%s); "
		    "refusing to acknowledge messages", PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
		goto out;
	}
	rc = C_OK;
out:
	PQclear(res);
	return rc;
}

static void
control_listen(PGconn *pg)
{
	PGresult *res = PQexec(pg, "LISTEN pointsd_registry");

	control_listening = PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	/* the registry may have changed while we were not listening */
	if (control_listening)
		(void)control_reload_registry(pg);
}

static void
control_sighup(struct server *s, PGconn *pg)
{
	char err[512], e[600];

	if (tls_ctx_reload(s, err, sizeof(err)) != C_OK)
		log_event(LOG_ERROR, "tls_reload_failed", "\"error\":%s",
		    log_json_str(e, sizeof(e), err));
	else
		log_event(LOG_INFO, "tls_reloaded", NULL);
	if (pg != NULL)
		(void)control_reload_registry(pg);
}

#define CONTROL_SETTLE_EVERY_US (10LL * 1000000)
#define CONTROL_PERIOD_EVERY_US (10LL * 1000000)
#define CONTROL_EXPIRE_EVERY_US (60LL * 1000000)

/* the daily expiry: expire_daily() runs it at most once per local day, and
 * its try-lock lets one instance of several do it */
static void
control_expire(struct server *s, struct dbconn *dc)
{
	static long long last_us;
	char err[512], e[600];
	int n;

	if (!s->conf.expire_auto || dc->pg == NULL || (last_us != 0 &&
	    now_us() - last_us < CONTROL_EXPIRE_EVERY_US))
		return;
	last_us = now_us();
	n = expire_due(dc->pg, err, sizeof(err));
	if (n < 0)
		log_event(LOG_ERROR, "expiry_failed", "\"error\":%s", log_json_str(e, sizeof(e), err));
	else if (n > 0)
		metrics_count_event("expiry_run");
	dbconn_check(dc);
}

/* settlement of due periods: every instance tries, the settlement advisory
 * lock lets exactly one of them do it */
static void
control_periodic(struct server *s, struct dbconn *dc)
{
	static long long last_settle_us;
	char err[512], e[600];
	int n;

	if (!s->conf.settle_auto || dc->pg == NULL ||
	    now_us() - last_settle_us < CONTROL_SETTLE_EVERY_US)
		return;
	last_settle_us = now_us();
	n = settle_due_periods(dc->pg, s->receipt_key, s->receipt_kid, err, sizeof(err));
	if (n < 0)
		log_event(LOG_ERROR, "settle_failed", "\"error\":%s", log_json_str(e, sizeof(e), err));
	if (n > 0)
		metrics_count_event("settle_run");
	if (n > 0)
		log_event(LOG_INFO, "settled", "\"periods\":%d", n);
	dbconn_check(dc);
}

/* the next period's row, about a minute before its first posting: two
 * groups posted side by side must never both create it (sql/006). A closed
 * or uncreatable period is the posting's business (it answers
 * period_closed); here it is only logged, once per distinct error. */
void
control_prepare_period(struct dbconn *dc)
{
	static long long last_us;
	static char last_err[256];
	char e[600];
	PGresult *res;

	if (dc->pg == NULL || (last_us != 0 && now_us() - last_us < CONTROL_PERIOD_EVERY_US))
		return;
	last_us = now_us();
	res = PQexec(dc->pg, "SELECT label FROM period_row_for(now() + interval '60 seconds')");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

		if (m == NULL)
			m = PQerrorMessage(dc->pg);
		if (strncmp(last_err, m, sizeof(last_err) - 1) != 0) {
			snprintf(last_err, sizeof(last_err), "%s", m);
			log_event(LOG_WARN, "period_prepare_failed", "\"error\":%s",
			    log_json_str(e, sizeof(e), m));
		}
	} else {
		last_err[0] = '\0';
	}
	PQclear(res);
	dbconn_check(dc);
}

void *
control_main(void *arg)
{
	struct server *s = &g_server;
	struct dbconn *dc = arg;

	while (!atomic_load(&s->stopping)) {
		PGconn *pg = dbconn_get(dc);
		struct pollfd pfd[2] = {
			{ .fd = control_pipe[0], .events = POLLIN },
			{ .fd = pg != NULL ? PQsocket(pg) : -1, .events = POLLIN },
		};
		char drain[64];
		int notified = 0;

		if (pg != NULL && !control_listening)
			control_listen(pg);
		(void)poll(pfd, 2, 1000);
		while (read(control_pipe[0], drain, sizeof(drain)) > 0)
			;
		if (atomic_exchange(&s->reload_requested, 0))
			control_sighup(s, pg);
		if (pg != NULL && PQconsumeInput(pg) == 1) {
			PGnotify *nf;
			while ((nf = PQnotifies(pg)) != NULL) {
				notified = 1;
				PQfreemem(nf);
			}
		}
		dbconn_check(dc);
		if (dc->pg == NULL)
			control_listening = 0;
		if (notified)
			(void)control_reload_registry(pg);
		control_prepare_period(dc);
		control_periodic(s, dc);
		control_expire(s, dc);
	}
	return NULL;
}
