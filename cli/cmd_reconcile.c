/* cmd_reconcile.c - `pointsctl reconcile`: the trial balance per account
 * kind, every invariant of ledger.md §1 and the references of the journal
 * tables, each checked by set-based SQL (reconcile_*() in sql/004). Reads
 * only, in one consistent snapshot. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "db.h"
#include "errors.h"

/* breaks printed per invariant; the rest are counted */
#define RECONCILE_SHOW_MAX 20
#define RECONCILE_N_INVARIANTS 6

static const char reconcile_usage[] =
    "usage: pointsctl reconcile [--json]\n"
    "\n"
    "Prints the trial balance per account kind (from transfers; net =\n"
    "debits - credits, the sign hledger shows) and checks the invariants of\n"
    "the ledger:\n"
    "  1 debits = credits over the ledger and per entry (transfers, their\n"
    "    accounts, lot moves)\n"
    "  2 no member balance is negative; stored sums = sums of transfers\n"
    "  3 member balance = remaining points of its lots; lot remaining = its moves\n"
    "  4 issued - issue reversals = members + redeemed (net) + breakage\n"
    "  5 entries, transfers, lot moves, receipts are append-only (triggers\n"
    "    enabled, role pointsd without UPDATE, DELETE, TRUNCATE)\n"
    "  6 every reference of entries, transfers, lots, lot moves, messages and\n"
    "    receipts resolves (they declare no foreign keys); every message entry\n"
    "    has its message, every message its receipt\n"
    "Exit status 0 when all hold; 1 with each break (which account or entry,\n"
    "expected, found, which entries) on stdout.\n";

static const char *const reconcile_names[RECONCILE_N_INVARIANTS] = {
	"debits = credits, over the ledger and per entry",
	"no negative member balance",
	"member balance = remaining points of its lots",
	"issued - issue reversals = members + redeemed + breakage",
	"journal tables append-only",
	"every reference of the journal tables resolves",
};

static const char reconcile_sql_breaks[] =
    "SELECT invariant, subject, expected, found, entries, n FROM ("
    " SELECT b.*, row_number() OVER (PARTITION BY b.invariant ORDER BY b.subject) AS rn,"
    " count(*) OVER (PARTITION BY b.invariant) AS n FROM reconcile_breaks() b) x "
    "WHERE rn <= $1::int ORDER BY invariant, rn";

static const char reconcile_sql_counts[] =
    "SELECT (SELECT count(*) FROM entries), (SELECT count(*) FROM transfers), "
    "(SELECT count(*) FROM accounts WHERE kind = 'member'), (SELECT count(*) FROM lots)";

/* how many breaks invariant inv has in res (column n of its first row) */
static long long
reconcile_count(const PGresult *res, int inv)
{
	for (int r = 0; r < PQntuples(res); r++)
		if (strtol(PQgetvalue(res, r, 0), NULL, 10) == inv)
			return strtoll(PQgetvalue(res, r, 5), NULL, 10);
	return 0;
}

static void
reconcile_print_text(const PGresult *tb, const PGresult *br, const PGresult *cn)
{
	printf("trial balance (points, from transfers)\n");
	ctl_print_table(tb, "  ");
	printf("ledger: %s entries, %s transfers, %s member accounts, %s lots\n",
	    PQgetvalue(cn, 0, 0), PQgetvalue(cn, 0, 1), PQgetvalue(cn, 0, 2),
	    PQgetvalue(cn, 0, 3));
	printf("invariants\n");
	for (int inv = 1; inv <= RECONCILE_N_INVARIANTS; inv++) {
		long long n = reconcile_count(br, inv);
		if (n == 0)
			printf("  %d %-58s ok\n", inv, reconcile_names[inv - 1]);
		else
			printf("  %d %-58s BROKEN (%lld)\n", inv, reconcile_names[inv - 1], n);
	}
	for (int r = 0; r < PQntuples(br); r++) {
		printf("break: invariant %s: %s: expected %s, found %s; entries %s\n",
		    PQgetvalue(br, r, 0), PQgetvalue(br, r, 1), PQgetvalue(br, r, 2),
		    PQgetvalue(br, r, 3), PQgetvalue(br, r, 4));
		if (r + 1 == PQntuples(br) || strcmp(PQgetvalue(br, r, 0),
		    PQgetvalue(br, r + 1, 0)) != 0) {
			long long n = strtoll(PQgetvalue(br, r, 5), NULL, 10);
			if (n > RECONCILE_SHOW_MAX)
				printf("break: invariant %s: ... and %lld more\n",
				    PQgetvalue(br, r, 0), n - RECONCILE_SHOW_MAX);
		}
	}
}

static int
reconcile_print_json(const PGresult *tb, const PGresult *br)
{
	json_t *inv = json_array();
	json_t *j = json_pack("{s:o, s:o}", "trial_balance", ctl_rows_json(tb),
	    "invariants", inv);

	if (j == NULL)
		return ctl_print_json(NULL);
	for (int i = 1; i <= RECONCILE_N_INVARIANTS; i++) {
		json_t *breaks = json_array();
		for (int r = 0; r < PQntuples(br); r++)
			if (strtol(PQgetvalue(br, r, 0), NULL, 10) == i)
				json_array_append_new(breaks, json_pack("{s:s, s:s, s:s, s:s}",
				    "subject", PQgetvalue(br, r, 1), "expected", PQgetvalue(br, r, 2),
				    "found", PQgetvalue(br, r, 3), "entries", PQgetvalue(br, r, 4)));
		json_array_append_new(inv, json_pack("{s:i, s:s, s:b, s:I, s:o}",
		    "invariant", i, "name", reconcile_names[i - 1],
		    "ok", reconcile_count(br, i) == 0, "breaks_total",
		    (json_int_t)reconcile_count(br, i), "breaks", breaks));
	}
	return ctl_print_json(j);
}

static int
reconcile_run(struct ctl *c)
{
	char maxbuf[16];
	const char *params[1] = { maxbuf };
	PGresult *tb = NULL, *br = NULL, *cn = NULL;
	struct db_err e;
	int st = CTL_EXIT_OK;

	snprintf(maxbuf, sizeof(maxbuf), "%d", RECONCILE_SHOW_MAX);
	if (db_command(c->db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0,
	    NULL, &e) != C_OK)
		return ctl_db_fail(c, "reconcile", &e);
	tb = db_query(c->db, "SELECT kind, accounts, debits, credits, net "
	    "FROM reconcile_trial_balance() ORDER BY array_position(ARRAY['issued', "
	    "'member', 'redeemed', 'breakage', 'total'], kind)", 0, NULL, &e);
	if (tb != NULL)
		br = db_query(c->db, reconcile_sql_breaks, 1, params, &e);
	if (br != NULL)
		cn = db_query(c->db, reconcile_sql_counts, 0, NULL, &e);
	if (cn == NULL) {
		st = ctl_db_fail(c, "reconcile", &e);
		goto out;
	}
	db_rollback(c->db);
	if (c->json)
		st = reconcile_print_json(tb, br);
	else
		reconcile_print_text(tb, br, cn);
	if (st == CTL_EXIT_OK && PQntuples(br) > 0) {
		char which[32] = "";
		size_t n = 0;
		for (int i = 1; i <= RECONCILE_N_INVARIANTS; i++)
			if (reconcile_count(br, i) > 0 && n + 3 < sizeof(which))
				n += (size_t)snprintf(which + n, sizeof(which) - n, "%s%d",
				    n > 0 ? ", " : "", i);
		st = ctl_fail(CTL_EXIT_INPUT, "reconcile: the ledger does not balance: "
		    "invariants %s broken", which);
	} else if (st == CTL_EXIT_OK && !c->json) {
		printf("reconcile: all %d invariants hold\n", RECONCILE_N_INVARIANTS);
	}
out:
	PQclear(cn);
	PQclear(br);
	PQclear(tb);
	return st;
}

int
cmd_reconcile(int argc, char **argv, struct ctl *c)
{
	int st;

	st = ctl_parse_plain(argc, argv, c, reconcile_usage, 0, 0);
	if (st != CTL_CONTINUE)
		return st;
	if (ctl_db(c) != C_OK)
		return CTL_EXIT_DB;
	return reconcile_run(c);
}
