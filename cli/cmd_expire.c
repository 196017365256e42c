/* cmd_expire.c - `pointsctl expire [--as-of T]`: turns the remaining points
 * of lots past their expiry into breakage (settlement/expire.c).
 * Never expires anything with an as-of later than the database clock. */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "db.h"
#include "errors.h"
#include "settlement/expire.h"

static const char expire_usage[] =
    "usage: pointsctl expire [--as-of TIMESTAMP] [--json]\n"
    "\n"
    "Moves the remaining points of every lot whose expires_at is at or before\n"
    "the as-of time (default: now; never later than now) to the breakage\n"
    "account: one journal entry (kind expiry) per member, stamped with the\n"
    "time of the run, so breakage lands in the current period. Running it\n"
    "again at the same as-of posts nothing. Safe while pointsd posts.\n"
    "TIMESTAMP is any PostgreSQL timestamptz, e.g. 2027-01-01T00:00:00Z.\n";

int
cmd_expire(int argc, char **argv, struct ctl *c)
{
	static const struct option opts[] = {
		{ "as-of", required_argument, NULL, 'a' },
		CTL_COMMON_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	const char *as_of = NULL;
	long long entries = 0, points = 0;
	char err[1024];
	int st, rc;

	optind = 0;
	for (;;) {
		int ch = getopt_long(argc, argv, ":ha:", opts, NULL);
		if (ch == -1)
			break;
		if (ch == 'a') {
			as_of = optarg;
			continue;
		}
		st = ctl_option(c, ch, argv, expire_usage);
		if (st != CTL_CONTINUE)
			return st;
	}
	st = ctl_positionals(argc, 0, 0, expire_usage);
	if (st != CTL_CONTINUE)
		return st;
	if (ctl_db(c) != C_OK)
		return CTL_EXIT_DB;
	rc = expire_run(c->db, as_of, &entries, &points, err, sizeof(err));
	if (rc != C_OK)
		return ctl_fail(PQstatus(c->db) == CONNECTION_OK ? CTL_EXIT_INPUT :
		    CTL_EXIT_DB, "%s", err);
	if (c->json) {
		json_t *j = json_pack("{s:I, s:I, s:s?}", "entries", (json_int_t)entries,
		    "points", (json_int_t)points, "as_of", as_of);
		return ctl_print_json(j);
	}
	if (entries == 0)
		printf("expired nothing: no lot with remaining points expired by %s\n",
		    as_of != NULL ? as_of : "now");
	else
		printf("expired %lld points of %lld members (%lld entries) as of %s\n",
		    points, entries, entries, as_of != NULL ? as_of : "now");
	return CTL_EXIT_OK;
}
