/* cmd_settle.c - `pointsctl settle`: settle closed periods by hand, list
 * the batches, show one (table, the stored JSON document, or CSV).
 * Never recomputes a stored batch: show prints what settle wrote. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clearing/receipt.h"
#include "ctl.h"
#include "db.h"
#include "errors.h"
#include "settlement/settle.h"

#define SETTLE_DEFAULT_KEY "var/certs/receipt.key"

static const char settle_usage[] =
    "usage: pointsctl settle [--period LABEL] [--receipt-key FILE]\n"
    "       pointsctl settle list [--json]\n"
    "       pointsctl settle show BATCH [--format table|json|csv]\n"
    "\n"
    "Settles a period (by default every ended period without a batch, oldest\n"
    "first): closes it once in-flight postings are done, writes its batch and\n"
    "seals it with the receipt key (default " SETTLE_DEFAULT_KEY "). A period\n"
    "that has not ended is refused. Settling again prints the same batch.\n";
static const char settle_list_usage[] =
    "usage: pointsctl settle list [--json]\n"
    "\n"
    "One line per batch: id, period, model, currency, partners, total paid in,\n"
    "total paid out and what the operator keeps, in major units.\n";
static const char settle_show_usage[] =
    "usage: pointsctl settle show BATCH [--format table|json|csv]\n"
    "\n"
    "table: partner lines, interchange, payments and the money journal;\n"
    "json: the stored batch document, byte for byte (its sha256 is listed);\n"
    "csv: one row per partner and line item, amounts in major and minor units.\n";

static int
settle_report(struct ctl *c, long long id)
{
	char idbuf[24];
	const char *params[1] = { idbuf };
	struct db_err e;
	PGresult *res;

	snprintf(idbuf, sizeof(idbuf), "%lld", id);
	res = db_query(c->db, "SELECT b.period, b.model, b.currency, "
	    "(SELECT count(*) FROM batch_lines l WHERE l.batch_id = b.id), "
	    "money_format_minor(-b.operator_net_minor, b.exponent), b.sha256 "
	    "FROM settlement_batches b WHERE b.id = $1::bigint", 1, params, &e);
	if (res == NULL)
		return ctl_db_fail(c, "settle", &e);
	if (PQntuples(res) == 1)
		printf("batch %lld period %s %s %s: %s partners, operator keeps %s, "
		    "sha256 %s\n", id, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
		    PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3),
		    PQgetvalue(res, 0, 4), PQgetvalue(res, 0, 5));
	PQclear(res);
	return CTL_EXIT_OK;
}

static int
settle_one(struct ctl *c, const char *label, EVP_PKEY *key, const char *kid)
{
	char err[1024];
	long long id = 0;
	int rc = settle_period(c->db, label, key, kid, &id, err, sizeof(err));

	if (rc == C_ERR)
		return ctl_fail(PQstatus(c->db) == CONNECTION_OK ? CTL_EXIT_INPUT :
		    CTL_EXIT_DB, "%s", err);
	if (rc != C_OK)
		return ctl_fail(CTL_EXIT_INPUT, "%s", err);
	return settle_report(c, id);
}

/* every ended period without a batch, oldest first */
static int
settle_all(struct ctl *c, EVP_PKEY *key, const char *kid)
{
	struct db_err e;
	PGresult *res;
	int st = CTL_EXIT_OK, n;

	res = db_query(c->db, "SELECT p.label FROM periods p "
	    "WHERE p.ends_at <= clock_timestamp() AND NOT EXISTS (SELECT 1 FROM "
	    "settlement_batches b WHERE b.period = p.label) ORDER BY p.starts_at",
	    0, NULL, &e);
	if (res == NULL)
		return ctl_db_fail(c, "settle", &e);
	n = PQntuples(res);
	for (int r = 0; r < n && st == CTL_EXIT_OK; r++)
		st = settle_one(c, PQgetvalue(res, r, 0), key, kid);
	PQclear(res);
	if (n == 0)
		printf("nothing to settle: no ended period without a batch\n");
	return st;
}

static int
settle_run(int argc, char **argv, struct ctl *c)
{
	static const struct option opts[] = {
		{ "period", required_argument, NULL, 'p' },
		{ "receipt-key", required_argument, NULL, 'k' },
		CTL_COMMON_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	const char *period = NULL, *key_path = SETTLE_DEFAULT_KEY;
	EVP_PKEY *key = NULL;
	char kid[44], q[96];
	int st;

	optind = 0;
	for (;;) {
		int ch = getopt_long(argc, argv, ":hp:k:", opts, NULL);
		if (ch == -1)
			break;
		if (ch == 'p' || ch == 'k') {
			*(ch == 'p' ? &period : &key_path) = optarg;
			continue;
		}
		st = ctl_option(c, ch, argv, settle_usage);
		if (st != CTL_CONTINUE)
			return st;
	}
	st = ctl_positionals(argc, 0, 0, settle_usage);
	if (st != CTL_CONTINUE)
		return st;
	if (access(key_path, R_OK) != 0)
		return ctl_fail(CTL_EXIT_INPUT, "settle: cannot read the receipt key %s",
		    ctl_quote(key_path, q, sizeof(q)));
	key = receipt_key_load(key_path);
	if (key == NULL || receipt_key_kid(key, kid) != C_OK) {
		EVP_PKEY_free(key);
		return ctl_fail(CTL_EXIT_INPUT, "settle: %s is not an Ed25519 private key",
		    ctl_quote(key_path, q, sizeof(q)));
	}
	if (ctl_db(c) != C_OK) {
		EVP_PKEY_free(key);
		return CTL_EXIT_DB;
	}
	st = period != NULL ? settle_one(c, period, key, kid) : settle_all(c, key, kid);
	EVP_PKEY_free(key);
	return st;
}

static int
settle_list(int argc, char **argv, struct ctl *c)
{
	struct db_err e;
	PGresult *res;
	int st;

	st = ctl_parse_plain(argc, argv, c, settle_list_usage, 0, 0);
	if (st != CTL_CONTINUE)
		return st;
	if (ctl_db(c) != C_OK)
		return CTL_EXIT_DB;
	res = db_query(c->db, "SELECT b.id AS batch, b.period, b.model, b.currency, "
	    "count(l.partner_id) AS partners, "
	    "money_format_minor(coalesce(sum(l.net_minor) FILTER (WHERE l.net_minor > 0), 0)::bigint, b.exponent) AS paid_in, "
	    "money_format_minor(coalesce(-sum(l.net_minor) FILTER (WHERE l.net_minor < 0), 0)::bigint, b.exponent) AS paid_out, "
	    "money_format_minor(-b.operator_net_minor, b.exponent) AS operator_keeps, "
	    "to_char(b.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS created_at "
	    "FROM settlement_batches b LEFT JOIN batch_lines l ON l.batch_id = b.id "
	    "GROUP BY b.id ORDER BY b.id", 0, NULL, &e);
	if (res == NULL)
		return ctl_db_fail(c, "settle_list", &e);
	st = CTL_EXIT_OK;
	if (c->json)
		st = ctl_print_json(ctl_rows_json(res));
	else
		ctl_print_table(res, "");
	PQclear(res);
	return st;
}

/* table format: one query per section, printed as aligned tables */
static const struct {
	const char *title;
	const char *sql;
} settle_show_sections[] = {
	{ "partners", "SELECT l.partner_id AS partner, l.issued_points AS issued_pts, "
	    "l.issue_reversed_points AS issue_rev_pts, l.redeemed_points AS redeemed_pts, "
	    "l.redeem_reversed_points AS redeem_rev_pts, l.expired_points AS expired_pts, "
	    "money_format_minor(l.issued_minor + l.redeem_reversed_minor + l.fees_minor "
	    "+ l.interchange_payable_minor, b.exponent) AS charged, "
	    "money_format_minor(-(l.issue_reversed_minor + l.redeemed_minor "
	    "+ l.interchange_receivable_minor), b.exponent) AS credited, "
	    "money_format_minor(l.fees_minor, b.exponent) AS fees, "
	    "money_format_minor(abs(l.net_minor), b.exponent) AS net, l.net_minor, l.direction "
	    "FROM batch_lines l JOIN settlement_batches b ON b.id = l.batch_id "
	    "WHERE l.batch_id = $1::bigint ORDER BY l.partner_id COLLATE \"C\"" },
	{ "interchange", "SELECT i.issuer, i.redeemer, i.points, "
	    "CASE WHEN i.amount_minor IS NULL THEN NULL ELSE "
	    "money_format_minor(i.amount_minor, b.exponent) END AS owed, i.amount_minor AS owed_minor "
	    "FROM interchange i JOIN settlement_batches b ON b.id = i.batch_id "
	    "WHERE i.batch_id = $1::bigint ORDER BY i.issuer COLLATE \"C\", i.redeemer COLLATE \"C\"" },
	{ "payments", "SELECT y.partner_id AS partner, y.direction, "
	    "money_format_minor(y.amount_minor, b.exponent) AS amount, y.amount_minor, y.account "
	    "FROM payments y JOIN settlement_batches b ON b.id = y.batch_id "
	    "WHERE y.batch_id = $1::bigint ORDER BY y.partner_id COLLATE \"C\"" },
	{ "journal", "SELECT j.seq, j.item, j.debit, j.credit, "
	    "money_format_minor(j.amount_minor, b.exponent) AS amount, j.amount_minor "
	    "FROM money_journal j JOIN settlement_batches b ON b.id = j.batch_id "
	    "WHERE j.batch_id = $1::bigint ORDER BY j.seq" },
};

static const char settle_sql_csv[] =
    "SELECT l.partner_id, v.item, v.amt, money_format_minor(v.amt, b.exponent) "
    "FROM batch_lines l JOIN settlement_batches b ON b.id = l.batch_id, "
    "LATERAL (VALUES (1, 'issued', l.issued_minor), (2, 'issue_reversed', l.issue_reversed_minor), "
    "(3, 'redeemed', l.redeemed_minor), (4, 'redeem_reversed', l.redeem_reversed_minor), "
    "(5, 'fees', l.fees_minor), (6, 'interchange_payable', l.interchange_payable_minor), "
    "(7, 'interchange_receivable', l.interchange_receivable_minor), (8, 'net', l.net_minor)) "
    "AS v(ord, item, amt) WHERE l.batch_id = $1::bigint "
    "UNION ALL SELECT 'operator', 'net', b.operator_net_minor, "
    "money_format_minor(b.operator_net_minor, b.exponent) FROM settlement_batches b "
    "WHERE b.id = $1::bigint";

static int
settle_show_table(struct ctl *c, const char *const *params, PGresult *head)
{
	struct db_err e;

	printf("batch %s period %s model %s currency %s (exponent %s)\n"
	    "created %s sha256 %s\noperator keeps %s (net %s minor units)\n",
	    params[0], PQgetvalue(head, 0, 0), PQgetvalue(head, 0, 1),
	    PQgetvalue(head, 0, 2), PQgetvalue(head, 0, 3), PQgetvalue(head, 0, 4),
	    PQgetvalue(head, 0, 5), PQgetvalue(head, 0, 6), PQgetvalue(head, 0, 7));
	for (size_t s = 0; s < sizeof(settle_show_sections) / sizeof(settle_show_sections[0]); s++) {
		PGresult *res = db_query(c->db, settle_show_sections[s].sql, 1, params, &e);
		if (res == NULL)
			return ctl_db_fail(c, "settle_show", &e);
		printf("\n%s:\n", settle_show_sections[s].title);
		if (PQntuples(res) > 0)
			ctl_print_table(res, "  ");
		else
			printf("  (none)\n");
		PQclear(res);
	}
	return CTL_EXIT_OK;
}

static int
settle_show_csv(struct ctl *c, const char *const *params, PGresult *head)
{
	struct db_err e;
	PGresult *res = db_query(c->db, settle_sql_csv, 1, params, &e);

	if (res == NULL)
		return ctl_db_fail(c, "settle_show", &e);
	printf("batch,period,currency,partner,item,amount_minor,amount\n");
	for (int r = 0; r < PQntuples(res); r++)
		printf("%s,%s,%s,%s,%s,%s,%s\n", params[0], PQgetvalue(head, 0, 0),
		    PQgetvalue(head, 0, 2), PQgetvalue(res, r, 0), PQgetvalue(res, r, 1),
		    PQgetvalue(res, r, 2), PQgetvalue(res, r, 3));
	PQclear(res);
	return CTL_EXIT_OK;
}

static int
settle_show_batch(struct ctl *c, const char *batch, const char *format)
{
	const char *params[1] = { batch };
	struct db_err e;
	PGresult *head;
	char q[64];
	int st;

	head = db_query(c->db, "SELECT period, model, currency, exponent, "
	    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
	    "sha256, money_format_minor(-operator_net_minor, exponent), "
	    "operator_net_minor, document FROM settlement_batches WHERE id = $1::bigint",
	    1, params, &e);
	if (head == NULL)
		return ctl_db_fail(c, "settle_show", &e);
	if (PQntuples(head) != 1) {
		PQclear(head);
		return ctl_fail(CTL_EXIT_INPUT, "settle_show: no batch %s",
		    ctl_quote(batch, q, sizeof(q)));
	}
	if (strcmp(format, "json") == 0) {
		fputs(PQgetvalue(head, 0, 8), stdout);
		fputc('\n', stdout);
		st = CTL_EXIT_OK;
	} else if (strcmp(format, "csv") == 0) {
		st = settle_show_csv(c, params, head);
	} else {
		st = settle_show_table(c, params, head);
	}
	PQclear(head);
	return st;
}

static int
settle_show(int argc, char **argv, struct ctl *c)
{
	static const struct option opts[] = {
		{ "format", required_argument, NULL, 'f' },
		CTL_COMMON_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	const char *format = NULL;
	int st;

	optind = 0;
	for (;;) {
		int ch = getopt_long(argc, argv, ":hf:", opts, NULL);
		if (ch == -1)
			break;
		if (ch == 'f') {
			format = optarg;
			continue;
		}
		st = ctl_option(c, ch, argv, settle_show_usage);
		if (st != CTL_CONTINUE)
			return st;
	}
	st = ctl_positionals(argc, 1, 1, settle_show_usage);
	if (st != CTL_CONTINUE)
		return st;
	if (format == NULL)
		format = c->json ? "json" : "table";
	if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0 &&
	    strcmp(format, "csv") != 0)
		return ctl_usage_fail(settle_show_usage, "--format must be table, json or csv");
	if (!ctl_valid_name(argv[optind], 18, ""))
		return ctl_usage_fail(settle_show_usage, "BATCH must be a batch number");
	for (const char *p = argv[optind]; *p != '\0'; p++)
		if (*p < '0' || *p > '9')
			return ctl_usage_fail(settle_show_usage, "BATCH must be a batch number");
	if (ctl_db(c) != C_OK)
		return CTL_EXIT_DB;
	return settle_show_batch(c, argv[optind], format);
}

int
cmd_settle(int argc, char **argv, struct ctl *c)
{
	if (argc >= 2 && strcmp(argv[1], "list") == 0)
		return settle_list(argc - 1, argv + 1, c);
	if (argc >= 2 && strcmp(argv[1], "show") == 0)
		return settle_show(argc - 1, argv + 1, c);
	return settle_run(argc, argv, c);
}
