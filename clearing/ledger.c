/* ledger.c - one group-commit transaction: BEGIN, the shared period lock,
 * post_group() over arrays (one round trip for the whole group), receipts
 * signed and inserted, COMMIT. Replies are the caller's, after this returns.
 * Never leaves a transaction open and never answers an unknown outcome. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "clearing/receipt.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"
#include "pgarray.h"
#include "pts_assert.h"

enum { P_PARTNER, P_ID, P_JWS, P_SHA, P_KID, P_PRE, P_TYPE, P_MEMBER, P_POINTS,
	P_REVERSES, P_COUNT };

#define LEDGER_RETRIES 3
/* a generous bound on the database time of one message in a group (about
 * 1 ms is measured on a 2-core machine, docs/performance.md) */
#define LEDGER_MS_PER_MESSAGE 5

static int
ledger_exec(PGconn *pg, const char *sql, char *sqlstate)
{
	PGresult *res = PQexec(pg, sql);
	int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok) {
		const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		char e[512];
		snprintf(sqlstate, 6, "%s", st != NULL ? st : "");
		log_event(LOG_WARN, "db_statement_failed", "\"sql\":%s,\"error\":%s",
		    log_json_str(e, 64, sql), log_json_str(e + 64, sizeof(e) - 64, PQerrorMessage(pg)));
	}
	PQclear(res);
	return ok ? C_OK : C_ERR;
}

static void
ledger_build_params(struct pgarray *a, struct post_item **items, size_t m)
{
	for (int p = 0; p < P_COUNT; p++)
		pgarray_init(&a[p]);
	for (size_t i = 0; i < m; i++) {
		const struct post_item *it = items[i];
		int ok = it->pre_error == ERR_OK;

		pgarray_add_str(&a[P_PARTNER], it->partner);
		pgarray_add_str(&a[P_ID], it->id[0] != '\0' ? it->id : NULL);
		pgarray_add(&a[P_JWS], it->jws, it->jws_len);
		pgarray_add_str(&a[P_SHA], it->sha256);
		pgarray_add_str(&a[P_KID], it->kid);
		pgarray_add_str(&a[P_PRE], ok ? NULL : err_code(it->pre_error));
		pgarray_add_str(&a[P_TYPE], ok ? message_type_name(it->msg.type) : NULL);
		pgarray_add_str(&a[P_MEMBER], ok ? it->msg.member : NULL);
		if (ok)
			pgarray_add_ll(&a[P_POINTS], it->msg.points);
		else
			pgarray_add(&a[P_POINTS], NULL, 0);
		pgarray_add_str(&a[P_REVERSES], ok && it->msg.type == MSG_REVERSE ?
		    it->msg.reverses : NULL);
	}
}

static int
ledger_read_results(PGresult *res, struct post_item **items, size_t m)
{
	if (PQresultStatus(res) != PGRES_TUPLES_OK || (size_t)PQntuples(res) != m)
		return C_ERR;
	for (size_t r = 0; r < m; r++) {
		long ord = strtol(PQgetvalue(res, (int)r, 0), NULL, 10);
		const char *outcome = PQgetvalue(res, (int)r, 1);
		struct post_item *it;

		if (ord < 1 || (size_t)ord > m)
			return C_ERR;
		it = items[ord - 1];
		if (strcmp(outcome, "rejected") == 0) {
			if (err_from_code(PQgetvalue(res, (int)r, 2), &it->result) != C_OK)
				return C_ERR;
			if (it->result == it->pre_error && it->detail != NULL)
				continue;
			it->detail = NULL;
			continue;
		}
		it->result = ERR_OK;
		it->replayed = strcmp(outcome, "replayed") == 0;
		it->entry = strtoll(PQgetvalue(res, (int)r, 3), NULL, 10);
		it->balance = strtoll(PQgetvalue(res, (int)r, 4), NULL, 10);
		snprintf(it->accepted_at, sizeof(it->accepted_at), "%s", PQgetvalue(res, (int)r, 5));
		snprintf(it->period, sizeof(it->period), "%s", PQgetvalue(res, (int)r, 6));
		if (!PQgetisnull(res, (int)r, 7)) {
			it->receipt = strdup(PQgetvalue(res, (int)r, 7));
			PTS_ASSERT(it->receipt != NULL);
		}
	}
	return C_OK;
}

/* sign the receipts of newly posted items and build the INSERT's arrays */
static size_t
ledger_sign_receipts(struct post_item **items, size_t m, struct pgarray *ids,
    struct pgarray *kids, struct pgarray *receipts)
{
	size_t k = 0;

	for (size_t i = 0; i < m; i++) {
		struct post_item *it = items[i];
		struct receipt_fields f;

		if (it->result != ERR_OK || it->replayed)
			continue;
		f.partner = it->partner;
		f.id = it->id;
		f.type = message_type_name(it->msg.type);
		f.member = it->msg.member;
		f.points = it->msg.points;
		f.balance = it->balance;
		f.entry = it->entry;
		f.accepted_at = it->accepted_at;
		f.period = it->period;
		f.sha256_hex = it->sha256;
		free(it->receipt);
		it->receipt = receipt_sign(g_server.receipt_key, g_server.receipt_kid, &f);
		PTS_ASSERT(it->receipt != NULL);
		pgarray_add_ll(ids, it->entry);
		pgarray_add_str(kids, g_server.receipt_kid);
		pgarray_add_str(receipts, it->receipt);
		k++;
	}
	/* a replay of a message posted earlier in this same group */
	for (size_t i = 0; i < m; i++) {
		if (items[i]->result != ERR_OK || !items[i]->replayed || items[i]->receipt != NULL)
			continue;
		for (size_t o = 0; o < i; o++) {
			if (items[o]->result == ERR_OK && !items[o]->replayed &&
			    items[o]->entry == items[i]->entry) {
				items[i]->receipt = strdup(items[o]->receipt);
				break;
			}
		}
		PTS_ASSERT(items[i]->receipt != NULL);
	}
	return k;
}

static int
ledger_try_group(PGconn *pg, struct post_item **items, size_t m, char *sqlstate)
{
	struct pgarray a[P_COUNT], ids, kids, rcpts;
	const char *vals[P_COUNT];
	char timeout_sql[80];
	PGresult *res = NULL;
	int rc = C_ERR;

	ledger_build_params(a, items, m);
	for (int p = 0; p < P_COUNT; p++)
		vals[p] = pgarray_finish(&a[p]);
	pgarray_init(&ids);
	pgarray_init(&kids);
	pgarray_init(&rcpts);
	/* db_timeout_ms bounds the wait for the database; the work of a large
	 * group (a 10,000-line batch) is allowed its own time on top */
	snprintf(timeout_sql, sizeof(timeout_sql), "SET LOCAL statement_timeout = %lld",
	    g_server.conf.db_timeout_ms + (long long)m * LEDGER_MS_PER_MESSAGE);
	if (ledger_exec(pg, "BEGIN", sqlstate) != C_OK ||
	    ledger_exec(pg, timeout_sql, sqlstate) != C_OK ||
	    ledger_exec(pg, "SELECT post_lock()", sqlstate) != C_OK)
		goto out;
	res = PQexecParams(pg,
	    "SELECT ord, outcome, code, entry, balance, accepted_at, period, receipt "
	    "FROM post_group($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], "
	    "$6::text[], $7::text[], $8::text[], $9::bigint[], $10::text[])",
	    P_COUNT, NULL, vals, NULL, NULL, 0);
	if (ledger_read_results(res, items, m) != C_OK) {
		const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		char e[512];
		snprintf(sqlstate, 6, "%s", st != NULL ? st : "");
		log_event(LOG_WARN, "post_group_failed", "\"error\":%s",
		    log_json_str(e, sizeof(e), PQerrorMessage(pg)));
		goto out;
	}
	if (ledger_sign_receipts(items, m, &ids, &kids, &rcpts) > 0) {
		const char *rv[3] = { pgarray_finish(&ids), pgarray_finish(&kids),
		    pgarray_finish(&rcpts) };
		PQclear(res);
		res = PQexecParams(pg,
		    "INSERT INTO receipts (entry_id, kid, receipt) "
		    "SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[])",
		    3, NULL, rv, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			snprintf(sqlstate, 6, "%s", st != NULL ? st : "");
			goto out;
		}
	}
	rc = ledger_exec(pg, "COMMIT", sqlstate);
out:
	PQclear(res);
	if (rc != C_OK && PQstatus(pg) == CONNECTION_OK &&
	    PQtransactionStatus(pg) != PQTRANS_IDLE)
		PQclear(PQexec(pg, "ROLLBACK"));
	for (int p = 0; p < P_COUNT; p++)
		pgarray_free(&a[p]);
	pgarray_free(&ids);
	pgarray_free(&kids);
	pgarray_free(&rcpts);
	return rc;
}

int
ledger_post_group(struct dbconn *dc, struct job **jobs, size_t n)
{
	struct post_item **items;
	size_t m = 0, total = 0;
	int rc = C_ERR;

	for (size_t j = 0; j < n; j++)
		total += jobs[j]->nitems;
	items = calloc(total + 1, sizeof(*items));
	PTS_ASSERT(items != NULL);
	for (size_t j = 0; j < n; j++)
		for (size_t i = 0; i < jobs[j]->nitems; i++)
			if (!jobs[j]->items[i].terminal)
				items[m++] = &jobs[j]->items[i];
	if (m == 0) {
		rc = C_OK;
		goto out;
	}
	for (int attempt = 0; attempt < LEDGER_RETRIES; attempt++) {
		PGconn *pg = dbconn_get(dc);
		char sqlstate[6] = "";

		if (pg == NULL)
			break;
		for (size_t i = 0; i < m; i++) {
			free(items[i]->receipt);
			items[i]->receipt = NULL;
		}
		long long t0 = now_us();
		rc = ledger_try_group(pg, items, m, sqlstate);
		if (rc == C_OK)
			metrics_observe_group(m, now_us() - t0);
		dbconn_check(dc);
		/* only a deadlock or serialization failure is worth a retry here */
		if (rc == C_OK || (strcmp(sqlstate, "40P01") != 0 && strcmp(sqlstate, "40001") != 0))
			break;
	}
out:
	free(items);
	return rc;
}

int
ledger_read(struct dbconn *dc, struct job *j)
{
	PGconn *pg = dbconn_get(dc);
	const char *vals[2] = { j->arg_partner, j->arg_key };
	PGresult *res;
	int rc = C_ERR;

	if (pg == NULL)
		return C_ERR;
	switch (j->kind) {
	case JOB_READ_MESSAGE:
		res = PQexecParams(pg, "SELECT message_reply($1, $2)::text", 2, NULL, vals,
		    NULL, NULL, 0);
		break;
	case JOB_READ_MEMBER:
		res = PQexecParams(pg, "SELECT member_summary($1)::text", 1, NULL, vals + 1,
		    NULL, NULL, 0);
		break;
	case JOB_READ_SETTLEMENTS:
		res = PQexecParams(pg, "SELECT json_build_object('settlements', "
		    "partner_settlements($1))::text", 1, NULL, vals, NULL, NULL, 0);
		break;
	case JOB_READ_SETTLEMENT:
		res = PQexecParams(pg, "SELECT partner_settlement($1, $2::bigint)::text", 2,
		    NULL, vals, NULL, NULL, 0);
		break;
	default:
		PTS_ASSERT(0);
		return C_ERR;
	}
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		if (!PQgetisnull(res, 0, 0)) {
			/* re-serialize compactly, in the order SQL built it */
			json_t *o = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
			j->read_json = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
			json_decref(o);
			PTS_ASSERT(j->read_json != NULL);
		}
		rc = C_OK;
	}
	PQclear(res);
	dbconn_check(dc);
	return rc;
}
