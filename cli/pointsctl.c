/* pointsctl.c - the operator CLI: global options, the command table, and the
 * helpers every command shares (one-line failures, tables, JSON).
 * Never prints more than one line on stderr, and only when it fails. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "db.h"
#include "errors.h"

/* one line per command group; others add theirs here and in ctl.h */
static const struct {
	const char *name;
	int (*run)(int argc, char **argv, struct ctl *c);
	const char *summary;
} ctl_commands[] = {
	{ "init", cmd_init, "create or migrate the schema (idempotent)" },
	{ "partner", cmd_partner, "partner registry: add, list, show, suspend, activate, cert" },
	{ "key", cmd_key, "partner signing keys: add, revoke, list" },
	{ "rate", cmd_rate, "rate cards: set, list" },
	{ "sign", cmd_sign, "sign a payload as a partner (prints a compact JWS)" },
	{ "settle", cmd_settle, "settle periods, list and show batches" },
	{ "settings", cmd_settings, "program settings: show, set" },
	{ "expire", cmd_expire, "turn expired lots into breakage" },
	{ "reconcile", cmd_reconcile, "trial balance and the ledger invariants" },
	{ "export", cmd_export, "export whole periods: csv, jsonl or hledger" },
	{ "verify-export", cmd_verify_export, "re-verify a jsonl export from the file alone" },
};

#define CTL_N_COMMANDS (sizeof(ctl_commands) / sizeof(ctl_commands[0]))

int
ctl_fail(int status, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* one line, whatever a detail from elsewhere contained */
	for (char *p = line; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	fflush(stdout);
	fprintf(stderr, "pointsctl: %s\n", line);
	return status;
}

/* "usage: pointsctl partner add ID ..." -> "partner add": the lower-case
 * words before the first argument or option, at most two */
static void
ctl_usage_name(const char *usage, char *out, size_t cap)
{
	const char *p = usage;
	size_t n = 0;
	int words = 1;

	if (strncmp(p, "usage: ", 7) == 0)
		p += 7;
	if (strncmp(p, "pointsctl ", 10) == 0)
		p += 10;
	for (; *p != '\0' && *p != '\n' && n + 1 < cap; p++) {
		if (*p == ' ') {
			int next_is_word = p[1] >= 'a' && p[1] <= 'z';
			if (words == 2 || !next_is_word)
				break;
			words++;
		}
		out[n++] = *p;
	}
	out[n] = '\0';
}

int
ctl_usage_fail(const char *usage, const char *detail)
{
	char name[64];

	ctl_usage_name(usage, name, sizeof(name));
	return ctl_fail(CTL_EXIT_USAGE, "usage: %s; see pointsctl %s --help",
	    detail, name);
}

int
ctl_option(struct ctl *c, int ch, char **argv, const char *usage)
{
	char detail[160], q[80];

	switch (ch) {
	case CTL_OPT_DB:
		c->conninfo = optarg;
		return CTL_CONTINUE;
	case CTL_OPT_JSON:
		c->json = 1;
		return CTL_CONTINUE;
	case 'h':
		fputs(usage, stdout);
		return CTL_EXIT_OK;
	case ':':
		snprintf(detail, sizeof(detail), "option %s needs a value",
		    ctl_quote(argv[optind - 1], q, sizeof(q)));
		return ctl_usage_fail(usage, detail);
	default:
		snprintf(detail, sizeof(detail), "unknown option %s",
		    ctl_quote(argv[optind - 1], q, sizeof(q)));
		return ctl_usage_fail(usage, detail);
	}
}

int
ctl_positionals(int argc, int n_min, int n_max, const char *usage)
{
	int n = argc - optind;

	if (n < n_min)
		return ctl_usage_fail(usage, "missing argument");
	if (n > n_max)
		return ctl_usage_fail(usage, "too many arguments");
	return CTL_CONTINUE;
}

int
ctl_dispatch(int argc, char **argv, struct ctl *c,
    const struct ctl_sub *subs, size_t n_subs, const char *group_usage)
{
	char detail[128], q[80];

	if (argc < 2)
		return ctl_usage_fail(group_usage, "missing subcommand");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(group_usage, stdout);
		return CTL_EXIT_OK;
	}
	for (size_t i = 0; i < n_subs; i++)
		if (strcmp(argv[1], subs[i].name) == 0)
			return subs[i].run(argc - 1, argv + 1, c);
	snprintf(detail, sizeof(detail), "unknown %s subcommand %s", argv[0],
	    ctl_quote(argv[1], q, sizeof(q)));
	return ctl_usage_fail(group_usage, detail);
}

int
ctl_db(struct ctl *c)
{
	char err[DB_ERR_CHARS];

	if (c->db != NULL)
		return C_OK;
	c->db = db_connect(c->conninfo, err, sizeof(err));
	if (c->db == NULL) {
		ctl_fail(CTL_EXIT_DB, "database unreachable: %s", err);
		return C_ERR;
	}
	return C_OK;
}

int
ctl_db_fail(struct ctl *c, const char *what, const struct db_err *e)
{
	int lost = e->connection_lost || PQstatus(c->db) != CONNECTION_OK;

	if (!lost)
		db_rollback(c->db);
	if (strcmp(e->sqlstate, "42P01") == 0)
		return ctl_fail(CTL_EXIT_INPUT, "%s: schema missing: %s "
		    "(run pointsctl init)", what, e->msg);
	if (lost)
		return ctl_fail(CTL_EXIT_DB, "database unreachable: %s", e->msg);
	return ctl_fail(CTL_EXIT_INPUT, "%s: %s", what, e->msg);
}

int
ctl_check_partner(struct ctl *c, const char *what, const char *id)
{
	const char *params[1] = { id };
	PGresult *res;
	struct db_err e;
	char q[96];
	int found;

	res = db_query(c->db, "SELECT 1 FROM partners WHERE id = $1", 1, params,
	    &e);
	if (res == NULL)
		return ctl_db_fail(c, what, &e);
	found = PQntuples(res) > 0;
	PQclear(res);
	if (found)
		return CTL_CONTINUE;
	return ctl_fail(CTL_EXIT_INPUT, "%s: unknown partner %s", what,
	    ctl_quote(id, q, sizeof(q)));
}

int
ctl_registry_commit(struct ctl *c, const char *what)
{
	struct db_err e;

	if (db_command(c->db, "NOTIFY pointsd_registry", 0, NULL, &e) != C_OK)
		return ctl_db_fail(c, what, &e);
	if (db_commit(c->db, &e) != C_OK)
		return ctl_db_fail(c, what, &e);
	return CTL_EXIT_OK;
}

int
ctl_read_file(const char *path, size_t max_bytes, char **out,
    size_t *out_len, const char **reason)
{
	FILE *f = stdin;
	char *buf = NULL;
	size_t n = 0, got;
	int rc = C_ERR;

	*out = NULL;
	*out_len = 0;
	if (path != NULL && strcmp(path, "-") != 0) {
		f = fopen(path, "rb");
		if (f == NULL) {
			*reason = errno == ENOENT ? "no such file" :
			    "cannot open the file";
			return C_ERR;
		}
	}
	buf = malloc(max_bytes + 2);
	if (buf == NULL) {
		*reason = "out of memory";
		goto out;
	}
	/* read one byte more than allowed to know the file is too large */
	do {
		got = fread(buf + n, 1, max_bytes + 1 - n, f);
		n += got;
	} while (got > 0 && n <= max_bytes);
	if (ferror(f)) {
		*reason = "cannot read the file";
		goto out;
	}
	if (n > max_bytes) {
		*reason = "file is too large";
		goto out;
	}
	buf[n] = '\0';
	*out = buf;
	*out_len = n;
	buf = NULL;
	rc = C_OK;
out:
	free(buf);
	if (f != stdin)
		fclose(f);
	return rc;
}

const char *
ctl_quote(const char *s, char *buf, size_t cap)
{
	size_t n = 0, max_chars = cap > 8 ? cap - 6 : 0;

	if (cap < 3) {
		if (cap > 0)
			buf[0] = '\0';
		return buf;
	}
	buf[n++] = '\'';
	for (; s != NULL && *s != '\0' && n < max_chars; s++) {
		unsigned char ch = (unsigned char)*s;
		buf[n++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	if (s != NULL && *s != '\0' && n + 3 < cap) {
		buf[n++] = '.';
		buf[n++] = '.';
	}
	buf[n++] = '\'';
	buf[n] = '\0';
	return buf;
}

int
ctl_valid_name(const char *s, size_t max_chars, const char *extra)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++) {
		char ch = s[n];
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9'))
			continue;
		if (strchr(extra, ch) == NULL)
			return 0;
	}
	return n >= 1 && n <= max_chars;
}

void
ctl_print_table(const PGresult *res, const char *indent)
{
	int nf = PQnfields(res), nt = PQntuples(res);
	size_t width[32];

	if (nf > 32)
		nf = 32;
	for (int f = 0; f < nf; f++) {
		width[f] = strlen(PQfname(res, f));
		for (int t = 0; t < nt; t++) {
			size_t w = PQgetisnull(res, t, f) ? 1 :
			    (size_t)PQgetlength(res, t, f);
			if (w > width[f])
				width[f] = w;
		}
	}
	for (int t = -1; t < nt; t++) {
		fputs(indent, stdout);
		for (int f = 0; f < nf; f++) {
			const char *v = t < 0 ? PQfname(res, f) :
			    PQgetisnull(res, t, f) ? "-" : PQgetvalue(res, t, f);
			if (f == nf - 1)
				printf("%s\n", v);
			else
				printf("%-*s  ", (int)width[f], v);
		}
	}
}

/* PostgreSQL type oids (pg_type.h): bool, int8, int2, int4 */
#define CTL_OID_BOOL 16
#define CTL_OID_INT8 20
#define CTL_OID_INT2 21
#define CTL_OID_INT4 23

json_t *
ctl_row_json(const PGresult *res, int row)
{
	json_t *obj = json_object();

	if (obj == NULL)
		return NULL;
	for (int f = 0; f < PQnfields(res); f++) {
		const char *v = PQgetvalue(res, row, f);
		Oid type = PQftype(res, f);
		json_t *j;

		if (PQgetisnull(res, row, f))
			j = json_null();
		else if (type == CTL_OID_BOOL)
			j = json_boolean(v[0] == 't');
		else if (type == CTL_OID_INT8 || type == CTL_OID_INT2 ||
		    type == CTL_OID_INT4)
			j = json_integer(strtoll(v, NULL, 10));
		else
			j = json_string(v);
		if (j == NULL || json_object_set_new(obj, PQfname(res, f), j) != 0) {
			json_decref(obj);
			return NULL;
		}
	}
	return obj;
}

json_t *
ctl_rows_json(const PGresult *res)
{
	json_t *arr = json_array();

	if (arr == NULL)
		return NULL;
	for (int t = 0; t < PQntuples(res); t++) {
		if (json_array_append_new(arr, ctl_row_json(res, t)) != 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

int
ctl_print_json(json_t *j)
{
	int rc;

	if (j == NULL)
		return ctl_fail(CTL_EXIT_INPUT, "json: cannot build the output");
	rc = json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(j);
	if (rc != 0)
		return ctl_fail(CTL_EXIT_INPUT, "json: cannot write the output");
	fputc('\n', stdout);
	return CTL_EXIT_OK;
}

static void
ctl_print_usage(FILE *out)
{
	fputs("usage: pointsctl [--db CONNINFO] [--json] COMMAND [ARGS]\n"
	    "\n"
	    "database: --db CONNINFO, else the PG* environment (PGHOST, PGPORT,\n"
	    "PGDATABASE, PGSERVICE; database \"points\" by default), else\n"
	    "\"" DB_DEFAULT_CONNINFO "\"\n"
	    "exit status: 0 ok, 1 refused input, 2 usage error, 3 database unreachable\n"
	    "\n"
	    "commands:\n", out);
	for (size_t i = 0; i < CTL_N_COMMANDS; i++)
		fprintf(out, "  %-10s %s\n", ctl_commands[i].name,
		    ctl_commands[i].summary);
	fputs("\n'pointsctl COMMAND --help' describes each command\n", out);
}

static const char ctl_main_usage[] =
    "usage: pointsctl [--db CONNINFO] [--json] COMMAND [ARGS]\n";

/* global options before the command; returns the index of the command, or
 * -(exit status + 1) when main must stop */
static int
ctl_parse_global(int argc, char **argv, struct ctl *c)
{
	static const struct option opts[] = {
		CTL_COMMON_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};

	opterr = 0;
	optind = 0;
	for (;;) {
		int ch = getopt_long(argc, argv, "+:h", opts, NULL);
		if (ch == -1)
			break;
		if (ch == 'h') {
			ctl_print_usage(stdout);
			return -(CTL_EXIT_OK + 1);
		}
		int st = ctl_option(c, ch, argv, ctl_main_usage);
		if (st != CTL_CONTINUE)
			return -(st + 1);
	}
	if (optind >= argc) {
		ctl_fail(CTL_EXIT_USAGE, "usage: missing command; see pointsctl --help");
		return -(CTL_EXIT_USAGE + 1);
	}
	return optind;
}

int
main(int argc, char **argv)
{
	struct ctl c = { NULL, NULL, 0 };
	int status = CTL_EXIT_USAGE, first;
	const char *name;
	char q[80];
	size_t i;

	first = ctl_parse_global(argc, argv, &c);
	if (first < 0)
		return -first - 1;
	name = argv[first];
	if (strcmp(name, "help") == 0) {
		ctl_print_usage(stdout);
		return CTL_EXIT_OK;
	}
	for (i = 0; i < CTL_N_COMMANDS; i++)
		if (strcmp(name, ctl_commands[i].name) == 0)
			break;
	if (i == CTL_N_COMMANDS)
		return ctl_fail(CTL_EXIT_USAGE, "usage: unknown command %s; "
		    "see pointsctl --help", ctl_quote(name, q, sizeof(q)));
	status = ctl_commands[i].run(argc - first, argv + first, &c);
	if (c.db != NULL)
		PQfinish(c.db);
	if (fflush(stdout) != 0 || ferror(stdout))
		return ctl_fail(CTL_EXIT_INPUT, "output: cannot write to stdout");
	return status;
}

/* options that take no value but the common ones, then min..max
 * positionals: CTL_CONTINUE, or the exit status to return */
int
ctl_parse_plain(int argc, char **argv, struct ctl *c, const char *usage,
    int min_pos, int max_pos)
{
	static const struct option opts[] = {
		CTL_COMMON_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	int st;

	optind = 0;
	for (;;) {
		int ch = getopt_long(argc, argv, ":h", opts, NULL);
		if (ch == -1)
			break;
		st = ctl_option(c, ch, argv, usage);
		if (st != CTL_CONTINUE)
			return st;
	}
	return ctl_positionals(argc, min_pos, max_pos, usage);
}

/* `COMMAND list PARTNER`: the rows of one query about an existing partner,
 * as a table or --json (key list, rate list) */
int
ctl_list_for_partner(int argc, char **argv, struct ctl *c, const char *usage,
    const char *what, const char *sql)
{
	const char *params[1];
	PGresult *res;
	struct db_err e;
	int st;

	st = ctl_parse_plain(argc, argv, c, usage, 1, 1);
	if (st != CTL_CONTINUE)
		return st;
	params[0] = argv[optind];
	if (ctl_db(c) != C_OK)
		return CTL_EXIT_DB;
	st = ctl_check_partner(c, what, params[0]);
	if (st != CTL_CONTINUE)
		return st;
	res = db_query(c->db, sql, 1, params, &e);
	if (res == NULL)
		return ctl_db_fail(c, what, &e);
	st = CTL_EXIT_OK;
	if (c->json)
		st = ctl_print_json(ctl_rows_json(res));
	else
		ctl_print_table(res, "");
	PQclear(res);
	return st;
}
