/* export.c - writes auditor exports of whole periods: jsonl (canonical
 * entry lines byte for byte, keys, batches, seals, a digest trailer),
 * csv and hledger. Reads in one snapshot, streams entries per period
 * through canon.c's cursor. Never rebuilds a canonical line itself. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "canon.h"
#include "clearing/receipt.h"
#include "db.h"
#include "errors.h"
#include "export.h"
#include "pts_assert.h"
#include "seal.h"
#include "verify.h"

#define EXPORT_TS "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'"

/* the periods overlapping [$1, $2), oldest first, with batch and seal */
static const char export_sql_periods[] =
    "SELECT p.label, to_char(p.starts_at AT TIME ZONE 'UTC', " EXPORT_TS "), "
    "to_char(p.ends_at AT TIME ZONE 'UTC', " EXPORT_TS "), p.status, p.cycle, "
    "p.timezone, s.batch_id, b.sha256, s.seal, s.kid "
    "FROM periods p LEFT JOIN period_seals s ON s.period = p.label "
    "LEFT JOIN settlement_batches b ON b.id = s.batch_id "
    "WHERE ($1::timestamptz IS NULL OR p.ends_at > $1::timestamptz) "
    "AND ($2::timestamptz IS NULL OR p.starts_at < $2::timestamptz) "
    "ORDER BY p.starts_at";

enum { P_LABEL, P_START, P_END, P_STATUS, P_CYCLE, P_TZ, P_BATCH, P_BSHA,
	P_SEAL, P_KID };

/* every key that signed something in those periods: partner message
 * keys (by messages.kid) and receipt keys (receipts and seals) */
static const char export_sql_keys[] =
    "WITH p AS (SELECT label FROM periods "
    " WHERE ($1::timestamptz IS NULL OR ends_at > $1::timestamptz) "
    " AND ($2::timestamptz IS NULL OR starts_at < $2::timestamptz)), "
    "k AS (SELECT DISTINCT 'message' AS use, m.kid FROM entries e "
    " JOIN messages m ON m.entry_id = e.id WHERE e.period IN (SELECT label FROM p) "
    " UNION SELECT DISTINCT 'receipt', r.kid FROM entries e "
    " JOIN receipts r ON r.entry_id = e.id WHERE e.period IN (SELECT label FROM p) "
    " UNION SELECT 'receipt', s.kid FROM period_seals s WHERE s.period IN (SELECT label FROM p)) "
    "SELECT k.use, k.kid, sk.partner_id, coalesce(sk.public_pem, rk.public_pem), "
    "to_char(coalesce(sk.valid_from, rk.created_at) AT TIME ZONE 'UTC', " EXPORT_TS "), "
    "to_char(sk.valid_until AT TIME ZONE 'UTC', " EXPORT_TS "), "
    "to_char(coalesce(sk.revoked_at, rk.retired_at) AT TIME ZONE 'UTC', " EXPORT_TS ") "
    "FROM k LEFT JOIN signing_keys sk ON k.use = 'message' AND sk.kid = k.kid "
    "LEFT JOIN receipt_keys rk ON k.use = 'receipt' AND rk.kid = k.kid "
    "ORDER BY k.use, k.kid";

struct export_out {
	FILE *f;
	enum export_format fmt;
	EVP_MD_CTX *md;          /* jsonl: digest of every byte before the trailer */
	int failed;
	struct export_stats *st;
	const char *period;      /* the period being written */
};

static void
export_put(struct export_out *o, const char *s, size_t n)
{
	if (o->failed)
		return;
	if (fwrite(s, 1, n, o->f) != n)
		o->failed = 1;
	if (o->md != NULL && EVP_DigestUpdate(o->md, s, n) != 1)
		o->failed = 1;
}

static void
export_puts(struct export_out *o, const char *s)
{
	export_put(o, s, strlen(s));
}

/* writes j (reference stolen) as one canonical jsonl line */
static void
export_put_record(struct export_out *o, json_t *j)
{
	char *line = j != NULL ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

	if (line == NULL) {
		o->failed = 1;
	} else {
		export_puts(o, line);
		export_put(o, "\n", 1);
	}
	free(line);
	json_decref(j);
}

/* ---------------------------------------------------------------- csv */

int
export_csv_needs_quotes(const char *s)
{
	size_t n = strlen(s);

	if (n > 0 && (s[0] == ' ' || s[n - 1] == ' '))
		return 1;
	return strpbrk(s, ",\"\r\n") != NULL;
}

int
export_csv_field(FILE *out, const char *s)
{
	int n = 0;

	if (s == NULL)
		return 0;
	if (!export_csv_needs_quotes(s))
		return fputs(s, out) < 0 ? -1 : (int)strlen(s);
	if (fputc('"', out) == EOF)
		return -1;
	for (const char *p = s; *p != '\0'; p++) {
		if (*p == '"' && fputc('"', out) == EOF)
			return -1;
		if (fputc(*p, out) == EOF)
			return -1;
		n += *p == '"' ? 2 : 1;
	}
	if (fputc('"', out) == EOF)
		return -1;
	return n + 2;
}

int
export_lots_text(const char *lots_json, char *buf, size_t cap)
{
	json_t *a = json_loads(lots_json, 0, NULL);
	size_t used = 0, i;
	json_t *v;
	int rc = C_OK;

	PTS_ASSERT(cap > 0);
	buf[0] = '\0';
	if (a == NULL || !json_is_array(a)) {
		json_decref(a);
		return C_ERR;
	}
	json_array_foreach(a, i, v) {
		int n = snprintf(buf + used, cap - used, "%s%lld:%lld", i > 0 ? ";" : "",
		    (long long)json_integer_value(json_object_get(v, "lot")),
		    (long long)json_integer_value(json_object_get(v, "points")));
		if (n < 0 || (size_t)n >= cap - used) {
			rc = C_ERR;
			break;
		}
		used += (size_t)n;
	}
	json_decref(a);
	return rc;
}

static const char export_csv_header[] =
    "record,period,entry,accepted_at,kind,partner,id,type,member,points,"
    "reverses,debit,credit,transfer_points,lots,kid,jws,receipt,text\r\n";

/* one csv row of 19 fields; NULL fields empty */
static void
export_csv_row(struct export_out *o, const char *const f[19])
{
	for (int i = 0; i < 19 && !o->failed; i++) {
		if (i > 0 && fputc(',', o->f) == EOF)
			o->failed = 1;
		if (export_csv_field(o->f, f[i]) < 0)
			o->failed = 1;
	}
	export_puts(o, "\r\n");
}

static const char *
export_jstr(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/* the integer member key of obj as text in buf, or NULL if absent */
static const char *
export_jint(json_t *obj, const char *key, char *buf, size_t cap)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v))
		return NULL;
	snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
	return buf;
}

/* one row per transfer of the entry, the entry's fields repeated */
static int
export_csv_entry(struct export_out *o, json_t *e)
{
	char entry[24], points[24], tpoints[24], lots[4096];
	json_t *transfers = json_object_get(e, "transfers"), *t;
	char *lots_json = json_dumps(json_object_get(e, "lots"), JSON_COMPACT);
	size_t i;

	if (lots_json == NULL || export_lots_text(lots_json, lots, sizeof(lots)) != C_OK)
		snprintf(lots, sizeof(lots), "%s", lots_json != NULL ? lots_json : "");
	free(lots_json);
	json_array_foreach(transfers, i, t) {
		const char *f[19] = { "entry", export_jstr(e, "period"),
		    export_jint(e, "entry", entry, sizeof(entry)), export_jstr(e, "accepted_at"),
		    export_jstr(e, "kind"), export_jstr(e, "partner"), export_jstr(e, "id"),
		    export_jstr(e, "type"), export_jstr(e, "member"),
		    export_jint(e, "points", points, sizeof(points)), export_jstr(e, "reverses"),
		    export_jstr(t, "debit"), export_jstr(t, "credit"),
		    export_jint(t, "points", tpoints, sizeof(tpoints)), lots, NULL,
		    export_jstr(e, "jws"), export_jstr(e, "receipt"), NULL };
		export_csv_row(o, f);
	}
	return o->failed ? C_ERR : C_OK;
}

/* ---------------------------------------------------------------- hledger */

int
export_hledger_account(const char *name, char *buf, size_t cap)
{
	size_t n = strlen(name);

	if (n == 0 || n >= cap)
		return C_ERR;
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];
		int bad = ch == ';' || ch == '\t' || ch == '\n' || ch == '\r' ||
		    (ch == ' ' && (i + 1 == n || name[i + 1] == ' ' || i == 0));
		buf[i] = bad ? '_' : ch;
	}
	buf[n] = '\0';
	return C_OK;
}

/* a transaction: date, description, tags, jws and receipt as comments,
 * two postings per transfer (debit +points, credit -points) */
static int
export_hledger_entry(struct export_out *o, json_t *e)
{
	const char *at = export_jstr(e, "accepted_at"), *kind = export_jstr(e, "kind");
	const char *rev = export_jstr(e, "reverses"), *jws = export_jstr(e, "jws");
	const char *receipt = export_jstr(e, "receipt");
	char head[512], acct[160];
	json_t *t;
	size_t i;

	if (at == NULL || kind == NULL || strlen(at) < 10)
		return C_ERR;
	if (strcmp(kind, "message") == 0)
		snprintf(head, sizeof(head), "%.10s * %s %s %s%s%s %s", at,
		    export_jstr(e, "partner"), export_jstr(e, "id"), export_jstr(e, "type"),
		    rev != NULL ? " of " : "", rev != NULL ? rev : "", export_jstr(e, "member"));
	else
		snprintf(head, sizeof(head), "%.10s * %s %s", at, kind,
		    export_jstr(e, "member") != NULL ? export_jstr(e, "member") : "");
	export_puts(o, head);
	snprintf(head, sizeof(head), "  ; entry:%lld, period:%s, accepted_at:%s\n",
	    (long long)json_integer_value(json_object_get(e, "entry")),
	    export_jstr(e, "period"), at);
	export_puts(o, head);
	if (jws != NULL) {
		export_puts(o, "    ; jws: ");
		export_puts(o, jws);
		export_puts(o, "\n");
	}
	if (receipt != NULL) {
		export_puts(o, "    ; receipt: ");
		export_puts(o, receipt);
		export_puts(o, "\n");
	}
	json_array_foreach(json_object_get(e, "transfers"), i, t) {
		long long pts = (long long)json_integer_value(json_object_get(t, "points"));
		const char *side[2] = { export_jstr(t, "debit"), export_jstr(t, "credit") };
		for (int s = 0; s < 2; s++) {
			if (side[s] == NULL || export_hledger_account(side[s], acct, sizeof(acct)) != C_OK)
				return C_ERR;
			snprintf(head, sizeof(head), "    %-40s  %lld %s\n", acct,
			    s == 0 ? pts : -pts, EXPORT_HLEDGER_COMMODITY);
			export_puts(o, head);
		}
	}
	export_puts(o, "\n");
	return o->failed ? C_ERR : C_OK;
}

/* ---------------------------------------------------------------- entries */

static int
export_entry_line(void *ctx, long long entry_id, const char *line, size_t len)
{
	struct export_out *o = ctx;
	json_t *e;
	int rc;

	(void)entry_id;
	o->st->entries++;
	if (o->fmt == EXPORT_JSONL) {
		export_put(o, line, len);
		export_put(o, "\n", 1);
		return o->failed ? C_ERR : C_OK;
	}
	e = json_loadb(line, len, 0, NULL);
	if (e == NULL)
		return C_ERR;
	rc = o->fmt == EXPORT_CSV ? export_csv_entry(o, e) : export_hledger_entry(o, e);
	json_decref(e);
	return rc;
}

/* ---------------------------------------------------------------- keys */

/* one key: jsonl record, csv row or hledger comment */
static int
export_key(struct export_out *o, const PGresult *res, int r)
{
	const char *use = PQgetvalue(res, r, 0), *kid = PQgetvalue(res, r, 1);
	const char *partner = PQgetisnull(res, r, 2) ? NULL : PQgetvalue(res, r, 2);
	const char *pem = PQgetisnull(res, r, 3) ? NULL : PQgetvalue(res, r, 3);
	EVP_PKEY *key = pem != NULL ? verify_pkey_from_pem(pem, strlen(pem)) : NULL;
	json_t *jwk = key != NULL ? jwk_from_public_pkey(key, kid) : NULL;
	json_t *rec;
	char *jwk_text = NULL;

	EVP_PKEY_free(key);
	rec = json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:o?, s:s?, s:s?, s:s?}",
	    "record", "key", "use", use, "kid", kid, "partner", partner,
	    "public_pem", pem, "jwk", jwk,
	    "valid_from", PQgetisnull(res, r, 4) ? NULL : PQgetvalue(res, r, 4),
	    "valid_until", PQgetisnull(res, r, 5) ? NULL : PQgetvalue(res, r, 5),
	    "revoked_at", PQgetisnull(res, r, 6) ? NULL : PQgetvalue(res, r, 6));
	if (rec == NULL)
		return C_ERR;
	o->st->keys++;
	if (o->fmt == EXPORT_JSONL) {
		export_put_record(o, rec);
	} else if (o->fmt == EXPORT_CSV) {
		const char *f[19] = { "key", NULL, NULL, NULL, NULL, partner, NULL, use,
		    NULL, NULL, NULL, NULL, NULL, NULL, NULL, kid, NULL, NULL, pem };
		export_csv_row(o, f);
		json_decref(rec);
	} else {
		jwk_text = json_dumps(json_object_get(rec, "jwk"), JSON_COMPACT | JSON_SORT_KEYS);
		export_puts(o, "; key ");
		export_puts(o, use);
		export_puts(o, " ");
		export_puts(o, kid);
		export_puts(o, " ");
		export_puts(o, jwk_text != NULL ? jwk_text : "(no public key)");
		export_puts(o, "\n");
		free(jwk_text);
		json_decref(rec);
	}
	return o->failed ? C_ERR : C_OK;
}

static int
export_keys(struct export_out *o, PGconn *pg, const char *const params[2],
    char *err, size_t errcap)
{
	struct db_err e;
	PGresult *res = db_query(pg, export_sql_keys, 2, params, &e);
	int rc = C_OK;

	if (res == NULL) {
		snprintf(err, errcap, "export: keys: %s", e.msg);
		return C_ERR;
	}
	for (int r = 0; r < PQntuples(res) && rc == C_OK; r++)
		rc = export_key(o, res, r);
	PQclear(res);
	if (rc != C_OK)
		snprintf(err, errcap, "export: cannot write the keys");
	return rc;
}

/* ---------------------------------------------------------------- periods */

static int
export_batch_record(struct export_out *o, PGconn *pg, const PGresult *res,
    int r, char *err, size_t errcap)
{
	const char *params[1] = { PQgetvalue(res, r, P_BATCH) };
	struct db_err e;
	PGresult *doc = db_query(pg, "SELECT document FROM settlement_batches "
	    "WHERE id = $1::bigint", 1, params, &e);

	if (doc == NULL || PQntuples(doc) != 1) {
		snprintf(err, errcap, "export: batch of %s: %s", PQgetvalue(res, r, P_LABEL),
		    doc == NULL ? e.msg : "missing");
		PQclear(doc);
		return C_ERR;
	}
	export_put_record(o, json_pack("{s:s, s:s, s:I, s:s, s:s}", "record", "batch",
	    "period", PQgetvalue(res, r, P_LABEL),
	    "batch", (json_int_t)strtoll(PQgetvalue(res, r, P_BATCH), NULL, 10),
	    "sha256", PQgetvalue(res, r, P_BSHA), "document", PQgetvalue(doc, 0, 0)));
	PQclear(doc);
	export_put_record(o, json_pack("{s:s, s:s, s:s, s:s}", "record", "seal",
	    "period", PQgetvalue(res, r, P_LABEL), "kid", PQgetvalue(res, r, P_KID),
	    "seal", PQgetvalue(res, r, P_SEAL)));
	return C_OK;
}

/* the period's header (record, csv seal row or hledger comments) */
static int
export_period_head(struct export_out *o, PGconn *pg, const PGresult *res,
    int r, char *err, size_t errcap)
{
	int sealed = !PQgetisnull(res, r, P_SEAL);
	char line[1024];

	if (o->fmt == EXPORT_JSONL) {
		export_put_record(o, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b}",
		    "record", "period", "period", PQgetvalue(res, r, P_LABEL),
		    "starts_at", PQgetvalue(res, r, P_START), "ends_at", PQgetvalue(res, r, P_END),
		    "status", PQgetvalue(res, r, P_STATUS), "cycle", PQgetvalue(res, r, P_CYCLE),
		    "timezone", PQgetvalue(res, r, P_TZ), "sealed", sealed));
		return sealed ? export_batch_record(o, pg, res, r, err, errcap) : C_OK;
	}
	if (o->fmt == EXPORT_CSV) {
		const char *f[19] = { "seal", PQgetvalue(res, r, P_LABEL), NULL, NULL, NULL,
		    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
		    sealed ? PQgetvalue(res, r, P_KID) : NULL, NULL, NULL,
		    sealed ? PQgetvalue(res, r, P_SEAL) : NULL };
		if (sealed)
			export_csv_row(o, f);
		return C_OK;
	}
	snprintf(line, sizeof(line), "; period %s [%s, %s) %s%s\n",
	    PQgetvalue(res, r, P_LABEL), PQgetvalue(res, r, P_START),
	    PQgetvalue(res, r, P_END), PQgetvalue(res, r, P_STATUS),
	    sealed ? ", sealed" : ", not sealed");
	export_puts(o, line);
	if (sealed) {
		export_puts(o, "; seal ");
		export_puts(o, PQgetvalue(res, r, P_SEAL));
		export_puts(o, "\n\n");
	}
	return C_OK;
}

static int
export_periods(struct export_out *o, PGconn *pg, const PGresult *res,
    char *err, size_t errcap)
{
	for (int r = 0; r < PQntuples(res); r++) {
		o->period = PQgetvalue(res, r, P_LABEL);
		if (export_period_head(o, pg, res, r, err, errcap) != C_OK)
			return C_ERR;
		if (canon_period_foreach(pg, o->period, export_entry_line, o, err,
		    errcap) != C_OK)
			return C_ERR;
		if (o->failed)
			break;
		o->st->periods++;
		o->st->sealed += !PQgetisnull(res, r, P_SEAL);
	}
	if (o->failed)
		snprintf(err, errcap, "export: cannot write the output");
	return o->failed ? C_ERR : C_OK;
}

/* ---------------------------------------------------------------- header, trailer */

static int
export_header(struct export_out *o, PGconn *pg, const char *const params[2],
    long long n_periods, char *err, size_t errcap)
{
	struct db_err e;
	PGresult *res = db_query(pg, "SELECT to_char($1::timestamptz AT TIME ZONE 'UTC', "
	    EXPORT_TS "), to_char($2::timestamptz AT TIME ZONE 'UTC', " EXPORT_TS "), "
	    "to_char(clock_timestamp() AT TIME ZONE 'UTC', " EXPORT_TS "), "
	    "(SELECT timezone FROM settings)", 2, params, &e);
	const char *from, *to;
	char line[512];

	if (res == NULL) {
		snprintf(err, errcap, "export: %s", e.msg);
		return C_ERR;
	}
	from = PQgetisnull(res, 0, 0) ? NULL : PQgetvalue(res, 0, 0);
	to = PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1);
	if (o->fmt == EXPORT_JSONL) {
		export_put_record(o, json_pack("{s:s, s:s, s:i, s:s?, s:s?, s:I, s:s, s:s}",
		    "record", "export", "format", EXPORT_JSONL_FORMAT, "version", EXPORT_VERSION,
		    "from", from, "to", to, "periods", (json_int_t)n_periods,
		    "created_at", PQgetvalue(res, 0, 2), "timezone", PQgetvalue(res, 0, 3)));
	} else if (o->fmt == EXPORT_CSV) {
		export_puts(o, export_csv_header);
	} else {
		snprintf(line, sizeof(line), "; pointsd export: the %lld periods overlapping "
		    "[%s, %s), created %s\n; amounts in points: a transfer debits "
		    "+points and credits -points\n\ncommodity 1000. %s\n\n", n_periods,
		    from != NULL ? from : "-infinity", to != NULL ? to : "infinity",
		    PQgetvalue(res, 0, 2), EXPORT_HLEDGER_COMMODITY);
		export_puts(o, line);
	}
	PQclear(res);
	return o->failed ? C_ERR : C_OK;
}

static void
export_trailer(struct export_out *o)
{
	unsigned char h[SEAL_HASH_BYTES];
	char hex[SEAL_HEX_CHARS];
	unsigned int n = 0;

	if (o->fmt != EXPORT_JSONL || o->failed)
		return;
	if (EVP_DigestFinal_ex(o->md, h, &n) != 1 || n != SEAL_HASH_BYTES) {
		o->failed = 1;
		return;
	}
	seal_hex(h, hex);
	EVP_MD_CTX_free(o->md);
	o->md = NULL;
	export_put_record(o, json_pack("{s:s, s:I, s:I, s:I, s:s}", "record", "end",
	    "periods", (json_int_t)o->st->periods, "entries", (json_int_t)o->st->entries,
	    "keys", (json_int_t)o->st->keys, "sha256", hex));
}

int
export_format_parse(const char *name, enum export_format *out)
{
	if (strcmp(name, "jsonl") == 0)
		*out = EXPORT_JSONL;
	else if (strcmp(name, "csv") == 0)
		*out = EXPORT_CSV;
	else if (strcmp(name, "hledger") == 0)
		*out = EXPORT_HLEDGER;
	else
		return C_ERR;
	return C_OK;
}

int
export_write(PGconn *pg, const char *from, const char *to,
    enum export_format fmt, FILE *out, struct export_stats *stats, char *err,
    size_t errcap)
{
	const char *params[2] = { from, to };
	struct export_out o = { out, fmt, NULL, 0, stats, NULL };
	PGresult *periods = NULL;
	struct db_err e;
	int rc = C_ERR;

	memset(stats, 0, sizeof(*stats));
	err[0] = '\0';
	if (fmt == EXPORT_JSONL) {
		o.md = EVP_MD_CTX_new();
		if (o.md == NULL || EVP_DigestInit_ex(o.md, EVP_sha256(), NULL) != 1) {
			snprintf(err, errcap, "export: cannot start the digest");
			goto out;
		}
	}
	if (db_command(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, &e) != C_OK ||
	    db_command(pg, "SELECT set_config('TimeZone', timezone, true) FROM settings",
	    0, NULL, &e) != C_OK) {
		snprintf(err, errcap, "export: %s", e.msg);
		goto out;
	}
	periods = db_query(pg, export_sql_periods, 2, params, &e);
	if (periods == NULL) {
		snprintf(err, errcap, "export: %s", e.msg);
		goto out;
	}
	if (export_header(&o, pg, params, PQntuples(periods), err, errcap) != C_OK ||
	    export_keys(&o, pg, params, err, errcap) != C_OK ||
	    export_periods(&o, pg, periods, err, errcap) != C_OK)
		goto out;
	export_trailer(&o);
	if (o.failed || fflush(out) != 0 || ferror(out)) {
		snprintf(err, errcap, "export: cannot write the output");
		goto out;
	}
	rc = C_OK;
out:
	if (rc != C_OK && err[0] == '\0')
		snprintf(err, errcap, "export: cannot write the output");
	db_rollback(pg);
	PQclear(periods);
	EVP_MD_CTX_free(o.md);
	return rc;
}
