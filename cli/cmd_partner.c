/* cmd_partner.c - `pointsctl partner`: add, list, show, suspend, activate, cert.
 * Owns: partner rows and their TLS certificate fingerprints. Never activates
 * a partner without a rate card in force; every change NOTIFYs pointsd. */
#include <stdio.h>
#include <string.h>

#include <openssl/x509.h>

#include "partners/certfp.h"
#include "ctl.h"
#include "db.h"
#include "errors.h"
#include "pts_limits.h"

#define PARTNER_NAME_BYTES_MAX 800  /* the schema allows 200 characters */
#define PARTNER_SUBJECT_BYTES  1024

/* a certificate as the registry stores it */
struct partner_cert {
	char fingerprint[CERTFP_HEX_CHARS + 1];
	char subject[PARTNER_SUBJECT_BYTES];
	char not_after_unix[24];
};

static const char partner_usage[] =
    "usage: pointsctl partner COMMAND ...\n"
    "\n"
    "  add ID --name NAME --cert FILE   register a partner (status pending)\n"
    "  list [--json]                    all partners\n"
    "  show ID [--json]                 one partner: certificates, keys, rate cards\n"
    "  suspend ID                       refuse its requests from now on\n"
    "  activate ID                      accept its requests (needs a rate card in force)\n"
    "  cert ID --add FILE | --remove FINGERPRINT\n"
    "                                   certificate renewal (several may be registered)\n";

static const char partner_add_usage[] =
    "usage: pointsctl partner add ID --name NAME --cert FILE\n"
    "\n"
    "Registers partner ID (1..64 of [A-Za-z0-9._-]) with status pending and the\n"
    "SHA-256 fingerprint of its TLS client certificate FILE (PEM X.509), whose\n"
    "subject CN must be ID.\n";
static const char partner_list_usage[] =
    "usage: pointsctl partner list [--json]\n";
static const char partner_show_usage[] =
    "usage: pointsctl partner show ID [--json]\n";
static const char partner_suspend_usage[] =
    "usage: pointsctl partner suspend ID\n"
    "\n"
    "Sets the status to suspended: running servers refuse its requests (403).\n";
static const char partner_activate_usage[] =
    "usage: pointsctl partner activate ID\n"
    "\n"
    "Sets the status to active; refused while no rate card is in force.\n";
static const char partner_cert_usage[] =
    "usage: pointsctl partner cert ID --add FILE | --remove FINGERPRINT\n"
    "\n"
    "Adds the certificate FILE (PEM X.509, subject CN = ID) or removes a\n"
    "fingerprint (64 hex digits, colons allowed) from the partner.\n";

static int
partner_check_id(const char *what, const char *id)
{
	char q[96];

	if (ctl_valid_name(id, LIMIT_PARTNER_CHARS, "._-"))
		return CTL_CONTINUE;
	return ctl_fail(CTL_EXIT_INPUT, "%s: bad partner id %s: 1..64 "
	    "characters of [A-Za-z0-9._-]", what, ctl_quote(id, q, sizeof(q)));
}

/* reads FILE and checks that it names partner id */
static int
partner_cert_load(const char *what, const char *path, const char *id,
    struct partner_cert *pc)
{
	char cn[LIMIT_PARTNER_CHARS * 4 + 1], q[96], q2[96];
	const char *reason = NULL;
	long long not_after = 0;
	X509 *cert;
	int st = CTL_EXIT_INPUT;

	cert = certfp_read_pem_file(path, &reason);
	if (cert == NULL)
		return ctl_fail(CTL_EXIT_INPUT, "%s: %s: %s", what, reason,
		    ctl_quote(path, q, sizeof(q)));
	if (certfp_sha256_hex(cert, pc->fingerprint) != C_OK ||
	    certfp_subject(cert, pc->subject, sizeof(pc->subject)) != C_OK ||
	    certfp_not_after(cert, &not_after) != C_OK) {
		ctl_fail(st, "%s: unreadable certificate %s", what,
		    ctl_quote(path, q, sizeof(q)));
		goto out;
	}
	if (certfp_cn(cert, cn, sizeof(cn)) != C_OK) {
		ctl_fail(st, "%s: certificate subject has no single common name",
		    what);
		goto out;
	}
	if (strcmp(cn, id) != 0) {
		ctl_fail(st, "%s: certificate common name %s is not the partner "
		    "id %s", what, ctl_quote(cn, q, sizeof(q)),
		    ctl_quote(id, q2, sizeof(q2)));
		goto out;
	}
	snprintf(pc->not_after_unix, sizeof(pc->not_after_unix), "%lld",
	    not_after);
	st = CTL_CONTINUE;
out:
	X509_free(cert);
	return st;
}

static int
partner_insert_cert(struct ctl *c, const char *what, const char *id,
    const struct partner_cert *pc)
{
	const char *params[4] = { pc->fingerprint, id, pc->subject,
	    pc->not_after_unix };
	struct db_err e;

	if (db_command(c->db, "INSERT INTO partner_certs (fingerprint, "
	    "partner_id, subject, not_after) VALUES ($1, $2, $3, "
	    "to_timestamp($4::bigint))", 4, params, &e) == C_OK)
		return CTL_CONTINUE;
	if (db_err_is(&e, "23505")) {
		db_rollback(c->db);
		return ctl_fail(CTL_EXIT_INPUT, "%s: certificate %s is already "
		    "registered", what, pc->fingerprint);
	}
	return ctl_db_fail(c, what, &e);
}

/* opens the transaction and inserts the partner row */
static int
partner_insert(struct ctl *c, const char *id, const char *name)
{
	const char *params[2] = { id, name };
	struct db_err e;

	if (db_begin(c->db) != C_OK)
		return ctl_fail(CTL_EXIT_DB, "database unreachable: begin failed");
	if (db_command(c->db, "INSERT INTO partners (id, name) VALUES ($1, $2)",
	    2, params, &e) == C_OK)
		return CTL_CONTINUE;
	if (!db_err_is(&e, "23505"))
		return ctl_db_fail(c, "partner_add", &e);
	db_rollback(c->db);
	return ctl_fail(CTL_EXIT_INPUT, "partner_add: partner %s already exists",
	    id);
}

static int
partner_add(int argc, char **argv, struct ctl *c)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "cert", required_argument, NULL, 'c' },
		CTL_COMMON_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	const char *name = NULL, *cert = NULL, *id;
	struct partner_cert pc;
	int st;

	optind = 0;
	for (;;) {
		int ch = getopt_long(argc, argv, ":hn:c:", opts, NULL);
		if (ch == -1)
			break;
		if (ch == 'n') {
			name = optarg;
			continue;
		}
		if (ch == 'c') {
			cert = optarg;
			continue;
		}
		st = ctl_option(c, ch, argv, partner_add_usage);
		if (st != CTL_CONTINUE)
			return st;
	}
	st = ctl_positionals(argc, 1, 1, partner_add_usage);
	if (st != CTL_CONTINUE)
		return st;
	if (name == NULL || cert == NULL)
		return ctl_usage_fail(partner_add_usage, name == NULL ?
		    "missing --name" : "missing --cert");
	id = argv[optind];
	st = partner_check_id("partner_add", id);
	if (st != CTL_CONTINUE)
		return st;
	if (name[0] == '\0' || strlen(name) > PARTNER_NAME_BYTES_MAX ||
	    strpbrk(name, "\n\r") != NULL)
		return ctl_fail(CTL_EXIT_INPUT, "partner_add: bad --name: 1..200 "
		    "characters on one line");
	st = partner_cert_load("partner_add", cert, id, &pc);
	if (st != CTL_CONTINUE)
		return st;
	if (ctl_db(c) != C_OK)
		return CTL_EXIT_DB;
	st = partner_insert(c, id, name);
	if (st == CTL_CONTINUE)
		st = partner_insert_cert(c, "partner_add", id, &pc);
	if (st != CTL_CONTINUE)
		return st;
	st = ctl_registry_commit(c, "partner_add");
	if (st != CTL_EXIT_OK)
		return st;
	printf("partner %s added (pending)\ncertificate %s\n", id,
	    pc.fingerprint);
	return CTL_EXIT_OK;
}

static int
partner_list(int argc, char **argv, struct ctl *c)
{
	PGresult *res;
	struct db_err e;
	int st;

	st = ctl_parse_plain(argc, argv, c, partner_list_usage, 0, 0);
	if (st != CTL_CONTINUE)
		return st;
	if (ctl_db(c) != C_OK)
		return CTL_EXIT_DB;
	res = db_query(c->db, "SELECT p.id, p.status, "
	    "(SELECT count(*) FROM partner_certs pc WHERE pc.partner_id = p.id) "
	    "AS certs, "
	    "(SELECT count(*) FROM signing_keys k WHERE k.partner_id = p.id "
	    "AND k.revoked_at IS NULL AND (k.valid_until IS NULL OR "
	    "k.valid_until > now())) AS keys, "
	    "to_json(p.created_at) #>> '{}' AS created_at, p.name "
	    "FROM partners p ORDER BY p.id", 0, NULL, &e);
	if (res == NULL)
		return ctl_db_fail(c, "partner_list", &e);
	if (c->json)
		st = ctl_print_json(ctl_rows_json(res));
	else
		ctl_print_table(res, "");
	PQclear(res);
	return st == CTL_CONTINUE ? CTL_EXIT_OK : st;
}

/* prints one section of `partner show` as a table */
static void
partner_print_section(const char *title, const PGresult *res)
{
	printf("%s:\n", title);
	if (PQntuples(res) == 0)
		printf("  (none)\n");
	else
		ctl_print_table(res, "  ");
}

static int
partner_show_print(struct ctl *c, PGresult *const res[4])
{
	static const char *const sections[3] = { "certificates", "keys",
	    "rate_cards" };
	json_t *obj;

	if (c->json) {
		obj = ctl_row_json(res[0], 0);
		for (int i = 0; obj != NULL && i < 3; i++) {
			if (json_object_set_new(obj, sections[i],
			    ctl_rows_json(res[i + 1])) != 0) {
				json_decref(obj);
				obj = NULL;
			}
		}
		return ctl_print_json(obj);
	}
	for (int f = 0; f < PQnfields(res[0]); f++)
		printf("%s: %s\n", PQfname(res[0], f), PQgetisnull(res[0], 0, f) ?
		    "-" : PQgetvalue(res[0], 0, f));
	for (int i = 0; i < 3; i++)
		partner_print_section(sections[i], res[i + 1]);
	return CTL_EXIT_OK;
}

static int
partner_show(int argc, char **argv, struct ctl *c)
{
	static const char *const sql[4] = {
		"SELECT p.id, p.name, p.status, "
		"to_json(p.created_at) #>> '{}' AS created_at, "
		"EXISTS (SELECT 1 FROM rate_cards r WHERE r.partner_id = p.id "
		"AND r.effective_from <= now()) AS rate_card_in_force "
		"FROM partners p WHERE p.id = $1",
		"SELECT fingerprint, to_json(not_after) #>> '{}' AS not_after, "
		"to_json(added_at) #>> '{}' AS added_at, subject "
		"FROM partner_certs WHERE partner_id = $1 "
		"ORDER BY added_at, fingerprint",
		ctl_sql_key_list,
		ctl_sql_rate_list,
	};
	PGresult *res[4] = { NULL, NULL, NULL, NULL };
	const char *params[1];
	struct db_err e;
	int st, i;

	st = ctl_parse_plain(argc, argv, c, partner_show_usage, 1, 1);
	if (st != CTL_CONTINUE)
		return st;
	params[0] = argv[optind];
	if (ctl_db(c) != C_OK)
		return CTL_EXIT_DB;
	/* one snapshot for the four queries */
	if (db_exec(c->db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") != C_OK)
		return ctl_fail(CTL_EXIT_DB, "database unreachable: begin failed");
	for (i = 0; i < 4; i++) {
		res[i] = db_query(c->db, sql[i], 1, params, &e);
		if (res[i] == NULL) {
			st = ctl_db_fail(c, "partner_show", &e);
			goto out;
		}
	}
	db_rollback(c->db);
	if (PQntuples(res[0]) == 0) {
		char q[96];
		st = ctl_fail(CTL_EXIT_INPUT, "partner_show: unknown partner %s",
		    ctl_quote(params[0], q, sizeof(q)));
		goto out;
	}
	st = partner_show_print(c, res);
out:
	for (i = 0; i < 4; i++)
		PQclear(res[i]);
	return st;
}

/* locks the partner row; CTL_CONTINUE with *has_card set, or a failure */
static int
partner_lock(struct ctl *c, const char *what, const char *id, int *has_card,
    char *old_status, size_t cap)
{
	const char *params[1] = { id };
	PGresult *res;
	struct db_err e;
	char q[96];

	if (db_begin(c->db) != C_OK)
		return ctl_fail(CTL_EXIT_DB, "database unreachable: begin failed");
	res = db_query(c->db, "SELECT p.status, EXISTS (SELECT 1 FROM rate_cards r "
	    "WHERE r.partner_id = p.id AND r.effective_from <= now()) "
	    "FROM partners p WHERE p.id = $1 FOR UPDATE", 1, params, &e);
	if (res == NULL)
		return ctl_db_fail(c, what, &e);
	if (PQntuples(res) == 0) {
		PQclear(res);
		db_rollback(c->db);
		return ctl_fail(CTL_EXIT_INPUT, "%s: unknown partner %s", what,
		    ctl_quote(id, q, sizeof(q)));
	}
	snprintf(old_status, cap, "%s", PQgetvalue(res, 0, 0));
	*has_card = PQgetvalue(res, 0, 1)[0] == 't';
	PQclear(res);
	return CTL_CONTINUE;
}

static int
partner_set_status(int argc, char **argv, struct ctl *c, const char *what,
    const char *usage, const char *status)
{
	char old_status[32];
	const char *params[2];
	struct db_err e;
	int st, has_card = 0;

	st = ctl_parse_plain(argc, argv, c, usage, 1, 1);
	if (st != CTL_CONTINUE)
		return st;
	params[0] = argv[optind];
	params[1] = status;
	if (ctl_db(c) != C_OK)
		return CTL_EXIT_DB;
	st = partner_lock(c, what, params[0], &has_card, old_status,
	    sizeof(old_status));
	if (st != CTL_CONTINUE)
		return st;
	/* settlement.md §1: an active partner always has a card in force */
	if (strcmp(status, "active") == 0 && !has_card) {
		db_rollback(c->db);
		return ctl_fail(CTL_EXIT_INPUT, "%s: %s has no rate card in force",
		    what, params[0]);
	}
	if (db_command(c->db, "UPDATE partners SET status = $2 WHERE id = $1",
	    2, params, &e) != C_OK)
		return ctl_db_fail(c, what, &e);
	st = ctl_registry_commit(c, what);
	if (st != CTL_EXIT_OK)
		return st;
	printf("partner %s is %s (was %s)\n", params[0], status, old_status);
	return CTL_EXIT_OK;
}

static int
partner_suspend(int argc, char **argv, struct ctl *c)
{
	return partner_set_status(argc, argv, c, "partner_suspend",
	    partner_suspend_usage, "suspended");
}

static int
partner_activate(int argc, char **argv, struct ctl *c)
{
	return partner_set_status(argc, argv, c, "partner_activate",
	    partner_activate_usage, "active");
}

static int
partner_cert_remove(struct ctl *c, const char *id, const char *fp_in)
{
	char fp[CERTFP_HEX_CHARS + 1], q[96];
	const char *params[2] = { id, fp };
	PGresult *res;
	struct db_err e;
	int removed, st;

	if (certfp_normalize_hex(fp_in, fp) != C_OK)
		return ctl_fail(CTL_EXIT_INPUT, "partner_cert: bad fingerprint %s: "
		    "64 hex digits expected", ctl_quote(fp_in, q, sizeof(q)));
	res = db_query(c->db, "DELETE FROM partner_certs WHERE partner_id = $1 "
	    "AND fingerprint = $2", 2, params, &e);
	if (res == NULL)
		return ctl_db_fail(c, "partner_cert", &e);
	removed = strcmp(PQcmdTuples(res), "0") != 0;
	PQclear(res);
	if (!removed) {
		db_rollback(c->db);
		return ctl_fail(CTL_EXIT_INPUT, "partner_cert: certificate %s is "
		    "not registered for %s", fp, id);
	}
	st = ctl_registry_commit(c, "partner_cert");
	if (st != CTL_EXIT_OK)
		return st;
	printf("certificate %s removed from %s\n", fp, id);
	return CTL_EXIT_OK;
}

static int
partner_cert_add(struct ctl *c, const char *id, const struct partner_cert *pc)
{
	int st = partner_insert_cert(c, "partner_cert", id, pc);

	if (st != CTL_CONTINUE)
		return st;
	st = ctl_registry_commit(c, "partner_cert");
	if (st != CTL_EXIT_OK)
		return st;
	printf("certificate %s added to %s\n", pc->fingerprint, id);
	return CTL_EXIT_OK;
}

static int
partner_cert(int argc, char **argv, struct ctl *c)
{
	static const struct option opts[] = {
		{ "add", required_argument, NULL, 'a' },
		{ "remove", required_argument, NULL, 'r' },
		CTL_COMMON_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	const char *add = NULL, *remove = NULL, *id;
	struct partner_cert pc;
	char old_status[32];
	int st, has_card;

	optind = 0;
	for (;;) {
		int ch = getopt_long(argc, argv, ":ha:r:", opts, NULL);
		if (ch == -1)
			break;
		if (ch == 'a') {
			add = optarg;
			continue;
		}
		if (ch == 'r') {
			remove = optarg;
			continue;
		}
		st = ctl_option(c, ch, argv, partner_cert_usage);
		if (st != CTL_CONTINUE)
			return st;
	}
	st = ctl_positionals(argc, 1, 1, partner_cert_usage);
	if (st != CTL_CONTINUE)
		return st;
	if ((add == NULL) == (remove == NULL))
		return ctl_usage_fail(partner_cert_usage,
		    "give exactly one of --add and --remove");
	id = argv[optind];
	st = partner_check_id("partner_cert", id);
	if (st == CTL_CONTINUE && add != NULL)
		st = partner_cert_load("partner_cert", add, id, &pc);
	if (st != CTL_CONTINUE)
		return st;
	if (ctl_db(c) != C_OK)
		return CTL_EXIT_DB;
	st = partner_lock(c, "partner_cert", id, &has_card, old_status,
	    sizeof(old_status));
	if (st != CTL_CONTINUE)
		return st;
	if (add != NULL)
		return partner_cert_add(c, id, &pc);
	return partner_cert_remove(c, id, remove);
}

int
cmd_partner(int argc, char **argv, struct ctl *c)
{
	static const struct ctl_sub subs[] = {
		{ "add", partner_add, partner_add_usage },
		{ "list", partner_list, partner_list_usage },
		{ "show", partner_show, partner_show_usage },
		{ "suspend", partner_suspend, partner_suspend_usage },
		{ "activate", partner_activate, partner_activate_usage },
		{ "cert", partner_cert, partner_cert_usage },
	};

	return ctl_dispatch(argc, argv, c, subs, sizeof(subs) / sizeof(subs[0]),
	    partner_usage);
}
