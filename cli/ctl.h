/* ctl.h - what the pointsctl command files share: the context, exit statuses,
 * the one-line failure, option parsing and output helpers (in pointsctl.c).
 * Commands never print more than one line on stderr, and only on failure. */
#ifndef PTS_CTL_H
#define PTS_CTL_H

#include <getopt.h>
#include <stddef.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "db.h"

/* exit statuses (operations.md §3) */
#define CTL_EXIT_OK    0
#define CTL_EXIT_INPUT 1   /* refused input, or a fact the operator must fix */
#define CTL_EXIT_USAGE 2   /* bad command line */
#define CTL_EXIT_DB    3   /* database unreachable */

/* options every command accepts; long-only values above any character */
#define CTL_OPT_DB   1000
#define CTL_OPT_JSON 1001
#define CTL_COMMON_OPTIONS \
	{ "db", required_argument, NULL, CTL_OPT_DB }, \
	{ "json", no_argument, NULL, CTL_OPT_JSON }, \
	{ "help", no_argument, NULL, 'h' }

/* returned by ctl_option() when parsing goes on */
#define CTL_CONTINUE (-1)

#define CTL_FILE_BYTES_MAX (64 * 1024)

struct ctl {
	const char *conninfo;  /* --db, or NULL for db_connect()'s rules */
	PGconn *db;            /* opened by ctl_db() on first use */
	int json;              /* --json: list/show print JSON */
};

/* a subcommand of a group: "partner add" is { "add", partner_add, usage } */
struct ctl_sub {
	const char *name;
	int (*run)(int argc, char **argv, struct ctl *c);
	const char *usage;
};

/* command groups: argv[0] is the group name; they return an exit status */
int cmd_init(int argc, char **argv, struct ctl *c);
int cmd_partner(int argc, char **argv, struct ctl *c);
int cmd_key(int argc, char **argv, struct ctl *c);
int cmd_rate(int argc, char **argv, struct ctl *c);
int cmd_sign(int argc, char **argv, struct ctl *c);
int ctl_parse_plain(int argc, char **argv, struct ctl *c, const char *usage,
    int min_pos, int max_pos);
int ctl_list_for_partner(int argc, char **argv, struct ctl *c, const char *usage,
    const char *what, const char *sql);
int cmd_settle(int argc, char **argv, struct ctl *c);
int cmd_settings(int argc, char **argv, struct ctl *c);
int cmd_expire(int argc, char **argv, struct ctl *c);
int cmd_reconcile(int argc, char **argv, struct ctl *c);
int cmd_export(int argc, char **argv, struct ctl *c);
int cmd_verify_export(int argc, char **argv, struct ctl *c);

/* listings with $1 = partner id, shared by `partner show`: the keys
 * (cmd_key.c) and the rate cards (cmd_rate.c) */
extern const char ctl_sql_key_list[];
extern const char ctl_sql_rate_list[];

/* prints "pointsctl: <formatted>" as one line on stderr; returns status */
int ctl_fail(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* usage error: one line pointing at --help; returns CTL_EXIT_USAGE */
int ctl_usage_fail(const char *usage, const char *detail);

/* handles a getopt_long() result common to every command (--db, --json,
 * --help, unknown option, missing argument): returns CTL_CONTINUE, or the
 * exit status when the command must stop. usage is the command's help. */
int ctl_option(struct ctl *c, int ch, char **argv, const char *usage);

/* checks that exactly n_min..n_max positional arguments remain after
 * getopt; CTL_CONTINUE or CTL_EXIT_USAGE (with the message printed) */
int ctl_positionals(int argc, int n_min, int n_max, const char *usage);

/* runs the subcommand named by argv[1] of a group */
int ctl_dispatch(int argc, char **argv, struct ctl *c,
    const struct ctl_sub *subs, size_t n_subs, const char *group_usage);

/* connects on first use: C_OK, or C_ERR after printing "database
 * unreachable" (the caller returns CTL_EXIT_DB) */
int ctl_db(struct ctl *c);

/* prints "pointsctl: <what>: <e->msg>" and rolls back; returns
 * CTL_EXIT_DB if the connection is lost, else CTL_EXIT_INPUT */
int ctl_db_fail(struct ctl *c, const char *what, const struct db_err *e);

/* CTL_CONTINUE if partner id exists, else the failure status ("<what>:
 * unknown partner ID") */
int ctl_check_partner(struct ctl *c, const char *what, const char *id);

/* NOTIFY pointsd_registry and COMMIT, so running servers reload; returns
 * CTL_EXIT_OK or the failure status */
int ctl_registry_commit(struct ctl *c, const char *what);

/* reads a whole file (NULL or "-": stdin) of at most max_bytes into a
 * NUL-terminated malloc'd buffer; C_OK, or C_ERR with a static reason */
int ctl_read_file(const char *path, size_t max_bytes, char **out,
    size_t *out_len, const char **reason);

/* a user-typed value made safe for the one-line message (quoted, control
 * characters replaced, truncated) */
const char *ctl_quote(const char *s, char *buf, size_t cap);

/* is s 1..max_chars characters of [A-Za-z0-9] and the characters in extra? */
int ctl_valid_name(const char *s, size_t max_chars, const char *extra);

/* output: an aligned table with a header (NULL as "-"), JSON of rows
 * (column name -> value; int and bool columns typed, NULL as null) */
void ctl_print_table(const PGresult *res, const char *indent);
json_t *ctl_row_json(const PGresult *res, int row);
json_t *ctl_rows_json(const PGresult *res);
/* prints j (reference stolen) as indented JSON and a newline */
int ctl_print_json(json_t *j);

#endif
