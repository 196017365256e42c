/* export.h - auditor exports of whole settlement periods (ledger.md §5):
 * jsonl (the canonical entry lines, keys, batches, seals; re-verifiable
 * from the file alone), csv (RFC 4180) and hledger journals.
 * Streams through a cursor: never holds the entries of a period in memory. */
#ifndef PTS_EXPORT_H
#define PTS_EXPORT_H

#include <stdio.h>
#include <stddef.h>
#include <libpq-fe.h>

#define EXPORT_VERSION 1
/* the jsonl header's "format" member */
#define EXPORT_JSONL_FORMAT "pointsd-export"
/* hledger commodity of points */
#define EXPORT_HLEDGER_COMMODITY "PTS"

enum export_format { EXPORT_JSONL = 1, EXPORT_CSV, EXPORT_HLEDGER };

struct export_stats {
	long long periods;
	long long sealed;
	long long entries;
	long long keys;
};

/* "jsonl" / "csv" / "hledger"; C_OK or C_ERR */
int export_format_parse(const char *name, enum export_format *out);

/* writes every period overlapping [from, to) (timestamptz texts; NULL: no
 * bound; zone-less times are read in the program's time zone) with its
 * entries, keys, batch and seal, in one read-only snapshot opened here
 * (the connection must be idle). C_OK, or C_ERR with a one-line reason. */
int export_write(PGconn *pg, const char *from, const char *to,
    enum export_format fmt, FILE *out, struct export_stats *stats, char *err,
    size_t errcap);

/* pure helpers, unit-tested */

/* does s need quotes in a CSV field (comma, quote, CR, LF, or leading or
 * trailing space)? */
int export_csv_needs_quotes(const char *s);
/* writes s as one RFC 4180 field (quoted, "" for ", when needed); NULL
 * writes an empty field. Returns the bytes written or -1. */
int export_csv_field(FILE *out, const char *s);
/* "lot:points;lot:points" of a canonical line's lots array into buf;
 * C_OK, or C_ERR if it does not fit */
int export_lots_text(const char *lots_json, char *buf, size_t cap);
/* an hledger account name from a ledger account name: characters that
 * hledger reads specially (";", "  " runs, tabs, newlines) become "_";
 * C_OK or C_ERR if it does not fit */
int export_hledger_account(const char *name, char *buf, size_t cap);

#endif
