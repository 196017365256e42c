/* cmd_export.c - `pointsctl export` (whole periods as jsonl, csv or an
 * hledger journal) and `pointsctl verify-export FILE` (jsonl, from the
 * file alone). Never writes a partial export under the name asked for. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "db.h"
#include "errors.h"
#include "settlement/export.h"
#include "settlement/verify.h"

static const char export_usage[] =
    "usage: pointsctl export [--from T] [--to T] --format csv|jsonl|hledger [-o FILE]\n"
    "\n"
    "Exports WHOLE settlement periods: every period overlapping [from, to)\n"
    "(no --from or --to: no bound on that side; times without a zone are read\n"
    "in the program's time zone), with all its entries and their transfers,\n"
    "lot moves, the partner's raw JWS and the receipt, its settlement batch and\n"
    "seal, and every public key that signed in it (retired ones included).\n"
    "jsonl: re-verifiable from the file alone with pointsctl verify-export or\n"
    "standard tools (docs/audit.md); csv: RFC 4180 with a header row, one row\n"
    "per transfer; hledger: a journal in points (commodity PTS) for\n"
    "`hledger check` and `hledger balance`. Output to stdout unless -o.\n";

static const char verify_usage[] =
    "usage: pointsctl verify-export FILE\n"
    "\n"
    "Re-verifies a jsonl export from the file alone (it needs no database):\n"
    "every partner signature and receipt with the keys in the file, every\n"
    "entry's balance, each sealed period's chain, seal signature, batch hash\n"
    "and link to the previous seal, and the file's trailer. Exit 0 when all\n"
    "hold, else 1 naming the first line that fails. csv and hledger exports\n"
    "are for spreadsheets and hledger and are not verified.\n";

/* writes to FILE.tmp, renamed to FILE on success */
static int
export_to_file(struct ctl *c, const char *from, const char *to,
    enum export_format fmt, const char *path, struct export_stats *st)
{
	char tmp[4096], err[1024], q[96];
	FILE *f;
	int rc;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return ctl_fail(CTL_EXIT_USAGE, "export: output path too long");
	f = fopen(tmp, "w");
	if (f == NULL)
		return ctl_fail(CTL_EXIT_INPUT, "export: cannot create %s",
		    ctl_quote(tmp, q, sizeof(q)));
	rc = export_write(c->db, from, to, fmt, f, st, err, sizeof(err));
	if (fclose(f) != 0 && rc == C_OK) {
		rc = C_ERR;
		snprintf(err, sizeof(err), "export: cannot write %.900s", tmp);
	}
	if (rc == C_OK && rename(tmp, path) != 0) {
		rc = C_ERR;
		snprintf(err, sizeof(err), "export: cannot rename the output to %.900s", path);
	}
	if (rc != C_OK) {
		unlink(tmp);
		return ctl_fail(PQstatus(c->db) == CONNECTION_OK ? CTL_EXIT_INPUT :
		    CTL_EXIT_DB, "%s", err);
	}
	return CTL_EXIT_OK;
}

int
cmd_export(int argc, char **argv, struct ctl *c)
{
	static const struct option opts[] = {
		{ "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 't' },
		{ "format", required_argument, NULL, 'F' },
		{ "output", required_argument, NULL, 'o' },
		CTL_COMMON_OPTIONS,
		{ NULL, 0, NULL, 0 }
	};
	const char *from = NULL, *to = NULL, *format = NULL, *path = NULL;
	enum export_format fmt;
	struct export_stats st;
	char err[1024];
	int s;

	optind = 0;
	for (;;) {
		int ch = getopt_long(argc, argv, ":hf:t:F:o:", opts, NULL);
		if (ch == -1)
			break;
		if (ch == 'f' || ch == 't' || ch == 'F' || ch == 'o') {
			*(ch == 'f' ? &from : ch == 't' ? &to : ch == 'F' ? &format : &path) = optarg;
			continue;
		}
		s = ctl_option(c, ch, argv, export_usage);
		if (s != CTL_CONTINUE)
			return s;
	}
	s = ctl_positionals(argc, 0, 0, export_usage);
	if (s != CTL_CONTINUE)
		return s;
	if (format == NULL)
		return ctl_usage_fail(export_usage, "--format csv|jsonl|hledger is required");
	if (export_format_parse(format, &fmt) != C_OK)
		return ctl_usage_fail(export_usage, "--format must be csv, jsonl or hledger");
	if (ctl_db(c) != C_OK)
		return CTL_EXIT_DB;
	if (path != NULL && strcmp(path, "-") != 0)
		s = export_to_file(c, from, to, fmt, path, &st);
	else if (export_write(c->db, from, to, fmt, stdout, &st, err, sizeof(err)) != C_OK)
		s = ctl_fail(PQstatus(c->db) == CONNECTION_OK ? CTL_EXIT_INPUT : CTL_EXIT_DB,
		    "%s", err);
	else
		s = CTL_EXIT_OK;
	if (s == CTL_EXIT_OK && path != NULL && strcmp(path, "-") != 0)
		printf("exported %lld periods (%lld sealed), %lld entries, %lld keys to %s\n",
		    st.periods, st.sealed, st.entries, st.keys, path);
	return s;
}

static void
verify_print(const char *path, const struct verify_report *r)
{
	printf("verify-export: %s: %lld lines\n", path, r->lines);
	printf("  keys:      %lld public keys read from the file\n", r->keys);
	printf("  entries:   %lld balanced (transfers, accounts, lot moves), %lld expiry\n",
	    r->entries, r->expiries);
	printf("  messages:  %lld partner signatures verified\n", r->messages);
	printf("  receipts:  %lld verified, each against the sha256 of its request bytes\n",
	    r->receipts);
	printf("  periods:   %lld, %lld sealed: chain recomputed, seal signature and batch "
	    "sha256 verified; %lld seals linked to the previous seal\n", r->periods,
	    r->sealed, r->links);
	if (r->open_periods[0] != '\0')
		printf("  not sealed (signatures and balance checked, no chain): %s\n",
		    r->open_periods);
	printf("  trailer:   counts and sha256 of the file match\n");
	printf("all checks passed\n");
}

int
cmd_verify_export(int argc, char **argv, struct ctl *c)
{
	struct verify_report rep;
	char err[1024], q[96];
	const char *path;
	FILE *f;
	int s, rc;

	s = ctl_parse_plain(argc, argv, c, verify_usage, 1, 1);
	if (s != CTL_CONTINUE)
		return s;
	path = argv[optind];
	f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	if (f == NULL)
		return ctl_fail(CTL_EXIT_INPUT, "verify-export: cannot open %s",
		    ctl_quote(path, q, sizeof(q)));
	rc = verify_export(f, &rep, err, sizeof(err));
	if (f != stdin)
		fclose(f);
	if (rc != C_OK)
		return ctl_fail(CTL_EXIT_INPUT, "verify-export: %s: %s",
		    ctl_quote(path, q, sizeof(q)), err);
	verify_print(path, &rep);
	return CTL_EXIT_OK;
}
