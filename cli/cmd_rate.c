/* cmd_rate.c - `pointsctl rate`: set and list effective-dated rate cards.
 * Owns: rate_cards rows. Never parses a price with floating point and never
 * back-dates a card (settlement.md §1); every change NOTIFYs pointsd. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "db.h"
#include "decimal.h"
#include "errors.h"
#include "pts_limits.h"

/* prices as exact numeric text: micros / 10^6 with six decimals */
const char ctl_sql_rate_list[] =
    "SELECT id, to_json(effective_from) #>> '{}' AS effective_from, "
    "(issue_price_micros::numeric / 1000000)::numeric(20, 6)::text AS issue_price, "
    "(redeem_price_micros::numeric / 1000000)::numeric(20, 6)::text AS redeem_price, "
    "(clearing_fee_micros::numeric / 1000000)::numeric(20, 6)::text AS clearing_fee, "
    "id = (SELECT r2.id FROM rate_cards r2 WHERE r2.partner_id = $1 "
    "AND r2.effective_from <= now() ORDER BY r2.effective_from DESC LIMIT 1) "
    "IS TRUE AS in_force "
    "FROM rate_cards WHERE partner_id = $1 ORDER BY effective_from";

static const char rate_usage[] =
    "usage: pointsctl rate COMMAND ...\n"
    "\n"
    "  set PARTNER --issue-price P --redeem-price P [--clearing-fee P] [--from T]\n"
    "                        add a rate card\n"
    "  list PARTNER [--json] the partner's rate cards\n";
static const char rate_set_usage[] =
    "usage: pointsctl rate set PARTNER --issue-price P --redeem-price P "
    "[--clearing-fee P] [--from T]\n"
    "\n"
    "Adds a rate card in force from T (any PostgreSQL timestamptz, not in the\n"
    "past; now by default) until a later card supersedes it. Prices are money\n"
    "per point: decimals with at most 6 decimal places, 0 to 1000 (e.g. 0.0125).\n"
    "The clearing fee is 0 by default.\n";
static const char rate_list_usage[] =
    "usage: pointsctl rate list PARTNER [--json]\n";

/* one price: its option name, the text given, the micro-units parsed */
struct rate_price {
	const char *option;
	const char *text;
	char micros[24];
};

static int
rate_parse_price(struct rate_price *p)
{
	const char *reason = NULL;
	long long micros = 0;
	char q[64];

	if (decimal_parse_micros(p->text, LIMIT_PRICE_MICROS_MAX, &micros,
	    &reason) != C_OK)
		return ctl_fail(CTL_EXIT_INPUT, "rate_set: bad %s %s: %s%s",
		    p->option, ctl_quote(p->text, q, sizeof(q)), reason,
		    strcmp(reason, "above the maximum") == 0 ?
		    " of 1000 per point" : "");
	snprintf(p->micros, sizeof(p->micros), "%lld", micros);
	return CTL_CONTINUE;
}

/* checks the partner and --from inside the transaction */
static int
rate_check(struct ctl *c, const char *partner, const char *from)
{
	const char *params[2] = { partner, from };
	PGresult *res;
	struct db_err e;
	char q[96];
	int known, past;

	res = db_query(c->db, "SELECT EXISTS (SELECT 1 FROM partners WHERE "
	    "id = $1 FOR UPDATE), coalesce($2::timestamptz < now(), false)",
	    2, params, &e);
	if (res == NULL) {
		if (strncmp(e.sqlstate, "22", 2) != 0)
			return ctl_db_fail(c, "rate_set", &e);
		db_rollback(c->db);
		return ctl_fail(CTL_EXIT_INPUT, "rate_set: bad --from: %s", e.msg);
	}
	known = PQgetvalue(res, 0, 0)[0] == 't';
	past = PQgetvalue(res, 0, 1)[0] == 't';
	PQclear(res);
	if (!known || past) {
		db_rollback(c->db);
		if (!known)
			return ctl_fail(CTL_EXIT_INPUT, "rate_set: unknown partner %s",
			    ctl_quote(partner, q, sizeof(q)));
		return ctl_fail(CTL_EXIT_INPUT, "rate_set: --from %s is in the "
		    "past", ctl_quote(from, q, sizeof(q)));
	}
	return CTL_CONTINUE;
}

static int
rate_store(struct ctl *c, const char *partner, struct rate_price p[3],
    const char *from)
{
	const char *params[5] = { partner, p[0].micros, p[1].micros,
	    p[2].micros, from };
	PGresult *res;
	struct db_err e;
	char shown[3][32];
	int st;

	if (db_begin(c->db) != C_OK)
		return ctl_fail(CTL_EXIT_DB, "database unreachable: begin failed");
	st = rate_check(c, partner, from);
	if (st != CTL_CONTINUE)
		return st;
	res = db_query(c->db, "INSERT INTO rate_cards (partner_id, "
	    "issue_price_micros, redeem_price_micros, clearing_fee_micros, "
	    "effective_from) VALUES ($1, $2::bigint, $3::bigint, $4::bigint, "
	    "coalesce($5::timestamptz, now())) "
	    "RETURNING id, to_json(effective_from) #>> '{}'", 5, params, &e);
	if (res == NULL) {
		if (!db_err_is(&e, "23505"))
			return ctl_db_fail(c, "rate_set", &e);
		db_rollback(c->db);
		return ctl_fail(CTL_EXIT_INPUT, "rate_set: %s already has a rate "
		    "card from that time", partner);
	}
	st = ctl_registry_commit(c, "rate_set");
	for (int i = 0; st == CTL_EXIT_OK && i < 3; i++)
		decimal_format_micros(strtoll(p[i].micros, NULL, 10), shown[i],
		    sizeof(shown[i]));
	if (st == CTL_EXIT_OK)
		printf("rate card %s for %s from %s: issue %s, redeem %s, "
		    "clearing fee %s\n", PQgetvalue(res, 0, 0), partner,
		    PQgetvalue(res, 0, 1), shown[0], shown[1], shown[2]);
	PQclear(res);
	return st;
}

static int
rate_set(int argc, char **argv, struct ctl *c)
{
	static const struct option opts[] = {
		{ "issue-price", required_argument, NULL, 'i' },
		{ "redeem-price", required_argument, NULL, 'r' },
		{ "clearing-fee", required_argument, NULL, 'f' },
		{ "from", required_argument, NULL, 't' },
		CTL_COMMON_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	struct rate_price p[3] = {
		{ "--issue-price", NULL, "" },
		{ "--redeem-price", NULL, "" },
		{ "--clearing-fee", "0", "" },
	};
	const char *from = NULL;
	int st;

	optind = 0;
	for (;;) {
		int ch = getopt_long(argc, argv, ":hi:r:f:t:", opts, NULL);
		if (ch == -1)
			break;
		switch (ch) {
		case 'i': p[0].text = optarg; continue;
		case 'r': p[1].text = optarg; continue;
		case 'f': p[2].text = optarg; continue;
		case 't': from = optarg; continue;
		default: break;
		}
		st = ctl_option(c, ch, argv, rate_set_usage);
		if (st != CTL_CONTINUE)
			return st;
	}
	st = ctl_positionals(argc, 1, 1, rate_set_usage);
	if (st != CTL_CONTINUE)
		return st;
	if (p[0].text == NULL || p[1].text == NULL)
		return ctl_usage_fail(rate_set_usage, p[0].text == NULL ?
		    "missing --issue-price" : "missing --redeem-price");
	for (int i = 0; i < 3; i++) {
		st = rate_parse_price(&p[i]);
		if (st != CTL_CONTINUE)
			return st;
	}
	if (ctl_db(c) != C_OK)
		return CTL_EXIT_DB;
	return rate_store(c, argv[optind], p, from);
}

static int
rate_list(int argc, char **argv, struct ctl *c)
{
	return ctl_list_for_partner(argc, argv, c, rate_list_usage, "rate_list",
	    ctl_sql_rate_list);
}

int
cmd_rate(int argc, char **argv, struct ctl *c)
{
	static const struct ctl_sub subs[] = {
		{ "set", rate_set, rate_set_usage },
		{ "list", rate_list, rate_list_usage },
	};

	return ctl_dispatch(argc, argv, c, subs, sizeof(subs) / sizeof(subs[0]),
	    rate_usage);
}
