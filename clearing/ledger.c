/* ledger.c - one group-commit transaction: BEGIN, the shared period lock,
 * post_group() over arrays, receipts signed and inserted, COMMIT; in libpq
 * pipeline mode, two round trips per group, in three phases so that the
 * writer can overlap one group's COMMIT with the next group's posting on a
 * second connection. Replies are the caller's, after the COMMIT is read.
 * Never leaves a transaction open and never answers an unknown outcome. */
#include <limits.h>
#include <poll.h>
#include <pthread.h>
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
/* a generous bound on the database time of one message in a group (0.1 to
 * 0.3 ms are measured on a 2-core machine, docs/performance.md) */
#define LEDGER_MS_PER_MESSAGE 5
/* the least statement timeout of a group whose first job has waited its
 * db_timeout_ms already: enough for a group that meets no lock */
#define LEDGER_MIN_TIMEOUT_MS 100
/* PL/pgSQL caches a plan per statement for the life of the connection; one
 * made when the ledger was small (a hash join over a whole table) would stay
 * as the tables grow, until an ANALYZE every 10% of growth invalidates it.
 * The writer's connections drop their plans this often, so that the plans
 * follow the ledger's size (a re-plan of post_group costs a few ms). */
#define LEDGER_REPLAN_US (10 * 1000000LL)

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

/* the receipts of items[lo, hi) that were newly posted */
struct ledger_signing {
	struct post_item **items;
	size_t lo, hi;
};

static void *
ledger_sign_range(void *arg)
{
	struct ledger_signing *r = arg;

	for (size_t i = r->lo; i < r->hi; i++) {
		struct post_item *it = r->items[i];
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
	}
	return NULL;
}

/* A 1,000-line batch takes ~40 ms of Ed25519 signing while its transaction
 * is open and the next group waits: from this many items on, a second
 * thread signs half of them (the key is only read) */
#define LEDGER_SIGN_SPLIT 128

/* sign the receipts of newly posted items and build the INSERT's arrays */
static size_t
ledger_sign_receipts(struct post_item **items, size_t m, struct pgarray *ids,
    struct pgarray *kids, struct pgarray *receipts)
{
	struct ledger_signing lo = { items, 0, m }, hi = { items, m / 2, m };
	pthread_t helper;
	int split = m >= LEDGER_SIGN_SPLIT &&
	    pthread_create(&helper, NULL, ledger_sign_range, &hi) == 0;
	size_t k = 0;

	if (split)
		lo.hi = m / 2;
	ledger_sign_range(&lo);
	if (split)
		pthread_join(helper, NULL);
	for (size_t i = 0; i < m; i++) {
		struct post_item *it = items[i];

		if (it->result != ERR_OK || it->replayed)
			continue;
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

static void
ledger_rq_reset(struct ledger_group *g)
{
	for (int i = g->rq_pos; i < g->rq_n; i++)
		PQclear(g->rq[i]);
	g->rq_n = g->rq_pos = 0;
	g->rq_done = 0;
}

int
ledger_group_ready(struct ledger_group *g)
{
	PGconn *pg = g->dc->pg;

	if (g->rq_done)
		return 1;
	if (pg == NULL || PQconsumeInput(pg) != 1)
		goto broken;
	while (!PQisBusy(pg)) {
		PGresult *res = PQgetResult(pg);

		if (g->rq_n == LEDGER_RQ_MAX) {
			PQclear(res);
			goto broken;
		}
		if (res == NULL && PQstatus(pg) != CONNECTION_OK)
			goto broken;
		if (res == NULL && g->rq_n > 0 && g->rq[g->rq_n - 1] == NULL)
			goto broken; /* two NULLs in a row: nothing more is coming */
		g->rq[g->rq_n++] = res;
		if (res != NULL && PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
			g->rq_done = 1;
			return 1;
		}
	}
	return 0;
broken:
	g->rq_done = 1;
	return 1;
}

/* blocks until the current phase's results are all in */
static void
ledger_group_wait(struct ledger_group *g)
{
	while (!ledger_group_ready(g)) {
		struct pollfd p = { .fd = PQsocket(g->dc->pg), .events = POLLIN };
		(void)poll(&p, 1, 1000);
	}
}

/* the next of the phase's results (NULL also when none is left) */
static PGresult *
ledger_rq_next(struct ledger_group *g)
{
	return g->rq_pos < g->rq_n ? g->rq[g->rq_pos++] : NULL;
}

/* read one query's results in pipeline mode (the result, then NULL); the
 * last non-NULL result is returned, or NULL with sqlstate set on an error */
static PGresult *
ledger_pipeline_result(struct ledger_group *g, ExecStatusType want, char *sqlstate)
{
	PGconn *pg = g->dc->pg;
	PGresult *res, *last = NULL;

	while ((res = ledger_rq_next(g)) != NULL) {
		PQclear(last);
		last = res;
	}
	if (last == NULL || PQresultStatus(last) != want) {
		const char *st = last != NULL ? PQresultErrorField(last, PG_DIAG_SQLSTATE) : NULL;
		char e[512];
		if (sqlstate[0] == '\0')
			snprintf(sqlstate, 6, "%s", st != NULL ? st : "");
		if (last == NULL || PQresultStatus(last) != PGRES_PIPELINE_ABORTED)
			log_event(LOG_WARN, "post_group_failed", "\"error\":%s",
			    log_json_str(e, sizeof(e), PQerrorMessage(pg)));
		PQclear(last);
		return NULL;
	}
	return last;
}

static int
ledger_pipeline_result_ok(struct ledger_group *g, ExecStatusType want, char *sqlstate)
{
	PGresult *res = ledger_pipeline_result(g, want, sqlstate);
	int ok = res != NULL;

	PQclear(res);
	return ok;
}

/* consume the phase's results up to and including its sync point; C_ERR
 * when the connection broke before it */
static int
ledger_pipeline_sync(struct ledger_group *g)
{
	while (g->rq_pos < g->rq_n) {
		PGresult *res = ledger_rq_next(g);
		ExecStatusType st;

		if (res == NULL)
			continue;
		st = PQresultStatus(res);
		PQclear(res);
		if (st == PGRES_PIPELINE_SYNC) {
			ledger_rq_reset(g);
			return C_OK;
		}
	}
	ledger_rq_reset(g);
	return C_ERR;
}

/* leave the connection idle and out of pipeline mode, the transaction
 * rolled back, whatever state an error left it in */
static void
ledger_group_abort(struct ledger_group *g)
{
	PGconn *pg = g->dc->pg;

	if (pg != NULL && PQstatus(pg) == CONNECTION_OK) {
		if (PQpipelineStatus(pg) != PQ_PIPELINE_OFF) {
			if (g->pending_syncs > 0) {
				ledger_group_wait(g);
				if (ledger_pipeline_sync(g) != C_OK)
					goto lost;
			}
			if (PQexitPipelineMode(pg) != 1)
				goto lost;
		}
		if (PQtransactionStatus(pg) != PQTRANS_IDLE)
			PQclear(PQexec(pg, "ROLLBACK"));
	}
	g->pending_syncs = 0;
	ledger_rq_reset(g);
	dbconn_check(g->dc);
	return;
lost:
	g->pending_syncs = 0;
	ledger_rq_reset(g);
	dbconn_close(g->dc);
}

void
ledger_group_init(struct ledger_group *g, struct dbconn *dc, struct job **jobs, size_t n)
{
	size_t total = 0;

	memset(g, 0, sizeof(*g));
	g->dc = dc;
	g->deadline_us = LLONG_MAX;
	for (size_t j = 0; j < n; j++) {
		total += jobs[j]->nitems;
		if (jobs[j]->enqueued_us + g_server.conf.db_timeout_ms * 1000 < g->deadline_us)
			g->deadline_us = jobs[j]->enqueued_us + g_server.conf.db_timeout_ms * 1000;
	}
	g->items = calloc(total + 1, sizeof(*g->items));
	PTS_ASSERT(g->items != NULL);
	for (size_t j = 0; j < n; j++)
		for (size_t i = 0; i < jobs[j]->nitems; i++)
			if (!jobs[j]->items[i].terminal)
				g->items[g->m++] = &jobs[j]->items[i];
}

void
ledger_group_free(struct ledger_group *g)
{
	ledger_rq_reset(g);
	free(g->items);
	g->items = NULL;
}

/* the posting path's three statements, prepared once per connection (the
 * server parses and analyses them once; DISCARD PLANS keeps them and only
 * makes them plan again) */
static const struct {
	const char *name, *sql;
	int nparams;
} ledger_statements[] = {
	{ "pts_timeout", "SELECT set_config('statement_timeout', $1, true)", 1 },
	{ "pts_post_group",
	    "SELECT ord, outcome, code, entry, balance, accepted_at, period, receipt "
	    "FROM post_group($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], "
	    "$6::text[], $7::text[], $8::text[], $9::bigint[], $10::text[])", P_COUNT },
	{ "pts_receipts", "INSERT INTO receipts (entry_id, kid, receipt) "
	    "SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[])", 3 },
};

#define LEDGER_N_STATEMENTS (sizeof(ledger_statements) / sizeof(ledger_statements[0]))

/* prepares the statements this connection does not have yet (dc->prepared
 * is a bit per statement: one that failed, say while post_group() is being
 * replaced, is tried again by the next group, and the others are not
 * prepared twice) */
static int
ledger_prepare(struct dbconn *dc)
{
	char e[512];

	for (size_t i = 0; i < LEDGER_N_STATEMENTS; i++) {
		PGresult *res;
		int ok;

		if (dc->prepared & (1u << i))
			continue;
		res = PQprepare(dc->pg, ledger_statements[i].name, ledger_statements[i].sql,
		    ledger_statements[i].nparams, NULL);
		ok = res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK;
		if (!ok)
			log_event(LOG_WARN, "prepare_failed", "\"statement\":\"%s\",\"error\":%s",
			    ledger_statements[i].name, log_json_str(e, sizeof(e),
			    res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(dc->pg)));
		PQclear(res);
		if (!ok) {
			dbconn_check(dc);
			return C_ERR;
		}
		dc->prepared |= 1u << i;
	}
	return C_OK;
}

/* phase 1, one round trip: BEGIN, the group's statement timeout and
 * post_group() are sent in one pipeline; nothing is read yet */
int
ledger_group_send(struct ledger_group *g, char *sqlstate)
{
	struct pgarray a[P_COUNT];
	const char *vals[P_COUNT];
	char timeout_ms[32];
	const char *timeout_vals[1] = { timeout_ms };
	long long left_ms;
	PGconn *pg = dbconn_get(g->dc);
	int rc = C_ERR;

	sqlstate[0] = '\0';
	if (pg == NULL || ledger_prepare(g->dc) != C_OK)
		return C_ERR;
	for (size_t i = 0; i < g->m; i++) {
		free(g->items[i]->receipt);
		g->items[i]->receipt = NULL;
	}
	ledger_rq_reset(g);
	g->t0_us = now_us();
	if (g->t0_us - g->dc->replanned_us > LEDGER_REPLAN_US) {
		PQclear(PQexec(pg, "DISCARD PLANS"));
		g->dc->replanned_us = g->t0_us;
	}
	ledger_build_params(a, g->items, g->m);
	for (int p = 0; p < P_COUNT; p++)
		vals[p] = pgarray_finish(&a[p]);
	/* db_timeout_ms bounds a partner's wait for the database from the moment
	 * its message was queued (a group held behind a stalled group of the
	 * same member gets what is left, at least LEDGER_MIN_TIMEOUT_MS); the
	 * work of a large group (a 10,000-line batch) is allowed its own time
	 * on top */
	left_ms = (g->deadline_us - g->t0_us) / 1000;
	if (left_ms < LEDGER_MIN_TIMEOUT_MS)
		left_ms = LEDGER_MIN_TIMEOUT_MS;
	snprintf(timeout_ms, sizeof(timeout_ms), "%lld",
	    left_ms + (long long)g->m * LEDGER_MS_PER_MESSAGE);
	if (PQenterPipelineMode(pg) != 1 ||
	    PQsendQueryParams(pg, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) != 1 ||
	    PQsendQueryPrepared(pg, "pts_timeout", 1, timeout_vals, NULL, NULL, 0) != 1 ||
	    PQsendQueryPrepared(pg, "pts_post_group", P_COUNT, vals, NULL, NULL, 0) != 1 ||
	    PQpipelineSync(pg) != 1) {
		char e[512];
		log_event(LOG_WARN, "post_group_failed", "\"error\":%s",
		    log_json_str(e, sizeof(e), PQerrorMessage(pg)));
		ledger_group_abort(g);
		goto out;
	}
	g->pending_syncs = 1;
	rc = C_OK;
out:
	for (int p = 0; p < P_COUNT; p++)
		pgarray_free(&a[p]);
	return rc;
}

/* phase 2: read post_group()'s rows, sign the receipts, send their INSERT
 * and COMMIT in one pipeline; the group's locks are held from here until
 * ledger_group_commit() reads the COMMIT */
int
ledger_group_post(struct ledger_group *g, char *sqlstate)
{
	PGconn *pg = g->dc->pg;
	struct pgarray ids, kids, rcpts;
	PGresult *res = NULL;
	int rc = C_ERR;

	sqlstate[0] = '\0';
	pgarray_init(&ids);
	pgarray_init(&kids);
	pgarray_init(&rcpts);
	if (pg == NULL)
		goto out;
	ledger_group_wait(g);
	PQclear(ledger_pipeline_result(g, PGRES_COMMAND_OK, sqlstate));   /* BEGIN */
	PQclear(ledger_pipeline_result(g, PGRES_TUPLES_OK, sqlstate));    /* set_config */
	res = ledger_pipeline_result(g, PGRES_TUPLES_OK, sqlstate);
	if (ledger_pipeline_sync(g) != C_OK) {
		dbconn_close(g->dc);
		goto out;
	}
	g->pending_syncs = 0;
	if (res == NULL || ledger_read_results(res, g->items, g->m) != C_OK)
		goto fail;
	if (ledger_sign_receipts(g->items, g->m, &ids, &kids, &rcpts) > 0) {
		const char *rv[3] = { pgarray_finish(&ids), pgarray_finish(&kids),
		    pgarray_finish(&rcpts) };
		if (PQsendQueryPrepared(pg, "pts_receipts", 3, rv, NULL, NULL, 0) != 1)
			goto fail;
		g->receipts_sent = 1;
	}
	if (PQsendQueryParams(pg, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) != 1 ||
	    PQpipelineSync(pg) != 1)
		goto fail;
	g->pending_syncs = 1;
	rc = C_OK;
	goto out;
fail:
	ledger_group_abort(g);
out:
	PQclear(res);
	pgarray_free(&ids);
	pgarray_free(&kids);
	pgarray_free(&rcpts);
	return rc;
}

/* phase 3: the COMMIT's outcome. C_OK: durable, every item has its result */
int
ledger_group_commit(struct ledger_group *g, char *sqlstate)
{
	PGconn *pg = g->dc->pg;
	int ok = 1;

	sqlstate[0] = '\0';
	if (pg == NULL)
		return C_ERR;
	ledger_group_wait(g);
	if (g->receipts_sent)
		ok = ledger_pipeline_result_ok(g, PGRES_COMMAND_OK, sqlstate);
	ok = ledger_pipeline_result_ok(g, PGRES_COMMAND_OK, sqlstate) && ok;
	if (ledger_pipeline_sync(g) != C_OK) {
		dbconn_close(g->dc);
		return C_ERR;
	}
	g->pending_syncs = 0;
	g->receipts_sent = 0;
	if (!ok || PQexitPipelineMode(pg) != 1) {
		ledger_group_abort(g);
		return C_ERR;
	}
	metrics_observe_group(g->m, now_us() - g->t0_us);
	return C_OK;
}

/* the three phases back to back, retried on a deadlock or serialization
 * failure (another instance posting the same id or member) */
int
ledger_post_group(struct dbconn *dc, struct job **jobs, size_t n, char *sqlstate)
{
	struct ledger_group g;
	int rc = C_ERR;

	sqlstate[0] = '\0';
	ledger_group_init(&g, dc, jobs, n);
	if (g.m == 0) {
		rc = C_OK;
		goto out;
	}
	for (int attempt = 0; attempt < LEDGER_RETRIES; attempt++) {
		rc = ledger_group_send(&g, sqlstate);
		if (rc == C_OK)
			rc = ledger_group_post(&g, sqlstate);
		if (rc == C_OK)
			rc = ledger_group_commit(&g, sqlstate);
		if (rc == C_OK || !ledger_retryable(sqlstate))
			break;
	}
out:
	ledger_group_free(&g);
	return rc;
}

int
ledger_group_fault(const char *sqlstate)
{
	return sqlstate[0] == '\0' || strncmp(sqlstate, "08", 2) == 0 ||
	    strncmp(sqlstate, "53", 2) == 0 || strncmp(sqlstate, "57", 2) == 0 ||
	    strncmp(sqlstate, "58", 2) == 0 || strcmp(sqlstate, "55P03") == 0;
}

int
ledger_retryable(const char *sqlstate)
{
	return strcmp(sqlstate, "40P01") == 0 || strcmp(sqlstate, "40001") == 0;
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
