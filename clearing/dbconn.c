/* dbconn.c - per-thread database connections with reconnect and back-off.
 * Sets statement_timeout from db_timeout_ms so that no posting waits longer
 * than that on the database; never retries a statement by itself. */
#include <stdio.h>
#include <stdlib.h>

#include "dbconn.h"
#include "log.h"
#include "metrics.h"
#include "server.h"

#define DBCONN_BACKOFF_US 200000

PGconn *
dbconn_get(struct dbconn *dc)
{
	char timeout_s[24], stmt[96], appname[64], e[512];
	const char *keys[] = { "dbname", "connect_timeout", "application_name", NULL };
	const char *vals[] = { g_server.conf.db, timeout_s, appname, NULL };
	PGresult *res;

	if (dc->pg != NULL && PQstatus(dc->pg) == CONNECTION_OK)
		return dc->pg;
	dbconn_close(dc);
	if (now_us() - dc->last_fail_us < DBCONN_BACKOFF_US)
		return NULL;
	snprintf(timeout_s, sizeof(timeout_s), "%lld",
	    (g_server.conf.db_timeout_ms + 999) / 1000);
	snprintf(appname, sizeof(appname), "pointsd-%s", dc->name);
	dc->prepared = 0;
	dc->pg = PQconnectdbParams(keys, vals, 1);
	if (dc->pg == NULL || PQstatus(dc->pg) != CONNECTION_OK) {
		log_event(LOG_WARN, "db_connect_failed", "\"conn\":\"%s\",\"error\":%s",
		    dc->name, log_json_str(e, sizeof(e), dc->pg != NULL ? PQerrorMessage(dc->pg) : "oom"));
		dbconn_close(dc);
		dc->last_fail_us = now_us();
		atomic_store(&g_server.db_up, 0);
		return NULL;
	}
	snprintf(stmt, sizeof(stmt), "SET statement_timeout = %lld",
	    g_server.conf.db_timeout_ms);
	res = PQexec(dc->pg, stmt);
	PQclear(res);
	if (dc->reconnects++ > 0)
		metrics_count_event("db_reconnect");
	atomic_store(&g_server.db_up, 1);
	log_event(LOG_INFO, "db_connected", "\"conn\":\"%s\"", dc->name);
	return dc->pg;
}

void
dbconn_check(struct dbconn *dc)
{
	if (dc->pg != NULL && PQstatus(dc->pg) != CONNECTION_OK) {
		log_event(LOG_WARN, "db_connection_lost", "\"conn\":\"%s\"", dc->name);
		dbconn_close(dc);
		dc->last_fail_us = now_us();
		atomic_store(&g_server.db_up, 0);
	}
}

void
dbconn_close(struct dbconn *dc)
{
	if (dc->pg != NULL)
		PQfinish(dc->pg);
	dc->pg = NULL;
}
