/* canon.c - builds the canonical export line of each journal entry
 * (ledger.md §5) from one set-based query walked through a cursor.
 * Never reorders keys or entries otherwise than the format says. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "canon.h"
#include "errors.h"
#include "pts_assert.h"

enum { C_ENTRY, C_AT, C_PERIOD, C_KIND, C_PARTNER, C_ID, C_TYPE, C_MEMBER,
	C_POINTS, C_REVERSES, C_TRANSFERS, C_LOTS, C_JWS, C_RECEIPT, C_NCOLS };

const char canon_sql_select[] =
    "SELECT e.id, to_char(e.accepted_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), e.period, e.kind, e.partner_id, "
    "e.msg_id, e.type, e.member, e.points, o.msg_id, "
    "(SELECT json_agg(json_build_object('debit', da.name, 'credit', ca.name, "
    "'points', t.points) ORDER BY t.id) FROM transfers t "
    "JOIN accounts da ON da.id = t.debit_account "
    "JOIN accounts ca ON ca.id = t.credit_account WHERE t.entry_id = e.id), "
    "(SELECT json_agg(json_build_object('lot', m.lot_id, 'points', m.points) "
    "ORDER BY m.seq) FROM lot_moves m WHERE m.entry_id = e.id), "
    "msg.jws, r.receipt "
    "FROM entries e LEFT JOIN entries o ON o.id = e.reverses_entry "
    "LEFT JOIN messages msg ON msg.entry_id = e.id "
    "LEFT JOIN receipts r ON r.entry_id = e.id ";

static int
canon_set_str(json_t *obj, const PGresult *res, int row, int col,
    const char *key)
{
	if (PQgetisnull(res, row, col))
		return 0;
	return json_object_set_new(obj, key, json_string(PQgetvalue(res, row, col)));
}

static int
canon_set_int(json_t *obj, const PGresult *res, int row, int col,
    const char *key)
{
	if (PQgetisnull(res, row, col))
		return 0;
	return json_object_set_new(obj, key,
	    json_integer(strtoll(PQgetvalue(res, row, col), NULL, 10)));
}

/* a json_agg column: an array of objects of integers and strings */
static int
canon_set_json(json_t *obj, const PGresult *res, int row, int col,
    const char *key)
{
	json_error_t jerr;
	json_t *v;

	if (PQgetisnull(res, row, col))
		return 0;
	v = json_loads(PQgetvalue(res, row, col), JSON_REJECT_DUPLICATES, &jerr);
	if (v == NULL || !json_is_array(v)) {
		json_decref(v);
		return -1;
	}
	return json_object_set_new(obj, key, v);
}

char *
canon_line_build(const PGresult *res, int row, size_t *len_out)
{
	json_t *obj = json_object();
	char *line = NULL;
	int bad = 0;

	PTS_ASSERT(PQnfields(res) == C_NCOLS);
	if (obj == NULL)
		return NULL;
	bad |= canon_set_int(obj, res, row, C_ENTRY, "entry");
	bad |= canon_set_str(obj, res, row, C_AT, "accepted_at");
	bad |= canon_set_str(obj, res, row, C_PERIOD, "period");
	bad |= canon_set_str(obj, res, row, C_KIND, "kind");
	bad |= canon_set_str(obj, res, row, C_PARTNER, "partner");
	bad |= canon_set_str(obj, res, row, C_ID, "id");
	bad |= canon_set_str(obj, res, row, C_TYPE, "type");
	bad |= canon_set_str(obj, res, row, C_MEMBER, "member");
	bad |= canon_set_int(obj, res, row, C_POINTS, "points");
	bad |= canon_set_str(obj, res, row, C_REVERSES, "reverses");
	bad |= canon_set_json(obj, res, row, C_TRANSFERS, "transfers");
	bad |= canon_set_json(obj, res, row, C_LOTS, "lots");
	bad |= canon_set_str(obj, res, row, C_JWS, "jws");
	bad |= canon_set_str(obj, res, row, C_RECEIPT, "receipt");
	if (bad == 0)
		line = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(obj);
	if (line != NULL && len_out != NULL)
		*len_out = strlen(line);
	return line;
}

static void
canon_err(PGconn *pg, const char *what, char *err, size_t errcap)
{
	char *p;

	snprintf(err, errcap, "%s: %s", what, PQerrorMessage(pg));
	for (p = err; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	while (p > err && p[-1] == ' ')
		*--p = '\0';
}

static int
canon_exec_ok(PGconn *pg, PGresult *res, ExecStatusType want,
    const char *what, char *err, size_t errcap)
{
	int ok = PQresultStatus(res) == want;

	if (!ok)
		canon_err(pg, what, err, errcap);
	PQclear(res);
	return ok ? C_OK : C_ERR;
}

/* fetches and hands on the rows; C_OK at the end of the cursor */
static int
canon_walk(PGconn *pg, canon_line_fn fn, void *ctx, char *err, size_t errcap)
{
	char fetch[64];

	snprintf(fetch, sizeof(fetch), "FETCH %d FROM canon_cursor", CANON_FETCH_ROWS);
	for (;;) {
		PGresult *res = PQexec(pg, fetch);
		int n, rc = C_OK;

		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			canon_err(pg, "canon fetch", err, errcap);
			PQclear(res);
			return C_ERR;
		}
		n = PQntuples(res);
		for (int r = 0; r < n && rc == C_OK; r++) {
			size_t len = 0;
			char *line = canon_line_build(res, r, &len);
			if (line == NULL) {
				snprintf(err, errcap, "canon: cannot build the line of entry %s",
				    PQgetvalue(res, r, C_ENTRY));
				rc = C_ERR;
				break;
			}
			rc = fn(ctx, strtoll(PQgetvalue(res, r, C_ENTRY), NULL, 10), line, len);
			if (rc != C_OK && err[0] == '\0')
				snprintf(err, errcap, "canon: stopped at entry %s",
				    PQgetvalue(res, r, C_ENTRY));
			free(line);
		}
		PQclear(res);
		if (rc != C_OK)
			return C_ERR;
		if (n < CANON_FETCH_ROWS)
			return C_OK;
	}
}

int
canon_foreach(PGconn *pg, const char *where_sql, int nparams,
    const char *const *params, canon_line_fn fn, void *ctx, char *err,
    size_t errcap)
{
	size_t qcap = sizeof(canon_sql_select) + strlen(where_sql) + 96;
	char *q = malloc(qcap);
	int own_tx = PQtransactionStatus(pg) == PQTRANS_IDLE;
	int rc = C_ERR;

	err[0] = '\0';
	if (q == NULL) {
		snprintf(err, errcap, "canon: out of memory");
		return C_ERR;
	}
	snprintf(q, qcap, "DECLARE canon_cursor NO SCROLL CURSOR FOR %sWHERE %s "
	    "ORDER BY e.id", canon_sql_select, where_sql);
	if (own_tx && canon_exec_ok(pg, PQexec(pg, "BEGIN"), PGRES_COMMAND_OK,
	    "canon begin", err, errcap) != C_OK)
		goto out;
	if (canon_exec_ok(pg, PQexecParams(pg, q, nparams, NULL, params, NULL,
	    NULL, 0), PGRES_COMMAND_OK, "canon declare", err, errcap) != C_OK)
		goto out;
	if (canon_walk(pg, fn, ctx, err, errcap) != C_OK)
		goto out;
	if (canon_exec_ok(pg, PQexec(pg, "CLOSE canon_cursor"), PGRES_COMMAND_OK,
	    "canon close", err, errcap) != C_OK)
		goto out;
	rc = C_OK;
out:
	if (own_tx && PQtransactionStatus(pg) != PQTRANS_IDLE)
		PQclear(PQexec(pg, rc == C_OK ? "COMMIT" : "ROLLBACK"));
	free(q);
	return rc;
}

int
canon_period_foreach(PGconn *pg, const char *label, canon_line_fn fn,
    void *ctx, char *err, size_t errcap)
{
	const char *params[1] = { label };

	return canon_foreach(pg, "e.period = $1", 1, params, fn, ctx, err, errcap);
}
