/* cmd_settings.c - `pointsctl settings`: show the program settings and
 * change one (validated by settings_set() in SQL).
 * Never changes the currency or the model once a message is posted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "db.h"
#include "errors.h"

static const char settings_usage[] =
    "usage: pointsctl settings [--json]\n"
    "       pointsctl settings set KEY VALUE\n"
    "\n"
    "keys: currency (ISO 4217: CNY, EUR, USD, GBP, JPY, KRW, ...), model\n"
    "(prepaid | on_redemption), cycle (daily | weekly | monthly), timezone\n"
    "(IANA name, default UTC), grace_seconds (or grace: an interval such as\n"
    "'1 hour'), validity_rule (months | calendar_year), validity_n (1-100).\n"
    "The currency and the model are fixed once the first message is posted;\n"
    "cycle and timezone apply from the next period.\n";
static const char settings_set_usage[] =
    "usage: pointsctl settings set KEY VALUE\n";

static const char settings_sql_show[] =
    "SELECT v.key, v.value FROM settings s, LATERAL (VALUES "
    "(1, 'currency', s.currency::text), (2, 'currency_exponent', s.currency_exponent::text), "
    "(3, 'model', s.model), (4, 'cycle', s.cycle), (5, 'timezone', s.timezone), "
    "(6, 'grace_seconds', s.grace_seconds::text), (7, 'validity_rule', s.validity_rule), "
    "(8, 'validity_n', s.validity_n::text)) AS v(ord, key, value) ORDER BY v.ord";

static int
settings_show(struct ctl *c)
{
	struct db_err e;
	PGresult *res;
	json_t *obj;

	if (ctl_db(c) != C_OK)
		return CTL_EXIT_DB;
	res = db_query(c->db, settings_sql_show, 0, NULL, &e);
	if (res == NULL)
		return ctl_db_fail(c, "settings", &e);
	if (!c->json) {
		for (int r = 0; r < PQntuples(res); r++)
			printf("%-18s %s\n", PQgetvalue(res, r, 0), PQgetvalue(res, r, 1));
		PQclear(res);
		return CTL_EXIT_OK;
	}
	obj = json_object();
	for (int r = 0; obj != NULL && r < PQntuples(res); r++) {
		const char *k = PQgetvalue(res, r, 0), *v = PQgetvalue(res, r, 1);
		int is_int = strcmp(k, "currency_exponent") == 0 ||
		    strcmp(k, "grace_seconds") == 0 || strcmp(k, "validity_n") == 0;
		json_object_set_new(obj, k, is_int ?
		    json_integer(strtoll(v, NULL, 10)) : json_string(v));
	}
	PQclear(res);
	return ctl_print_json(obj);
}

static int
settings_set(int argc, char **argv, struct ctl *c)
{
	const char *params[2];
	struct db_err e;
	int st;

	st = ctl_parse_plain(argc, argv, c, settings_set_usage, 2, 2);
	if (st != CTL_CONTINUE)
		return st;
	params[0] = argv[optind];
	params[1] = argv[optind + 1];
	if (ctl_db(c) != C_OK)
		return CTL_EXIT_DB;
	if (db_begin(c->db) != C_OK)
		return ctl_fail(CTL_EXIT_DB, "database unreachable: begin failed");
	if (db_command(c->db, "SELECT settings_set($1, $2)", 2, params, &e) != C_OK)
		return ctl_db_fail(c, "settings_set", &e);
	st = ctl_registry_commit(c, "settings_set");
	if (st == CTL_EXIT_OK)
		printf("settings: %s set\n", params[0]);
	return st;
}

int
cmd_settings(int argc, char **argv, struct ctl *c)
{
	int st;

	if (argc >= 2 && strcmp(argv[1], "set") == 0)
		return settings_set(argc - 1, argv + 1, c);
	st = ctl_parse_plain(argc, argv, c, settings_usage, 0, 0);
	if (st != CTL_CONTINUE)
		return st;
	return settings_show(c);
}
