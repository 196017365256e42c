/* canon.h - the canonical export line of a journal entry (ledger.md §5),
 * shared by the period seal and by exports and their verification.
 * Never changes a byte of the format: seals already signed depend on it. */
#ifndef PTS_CANON_H
#define PTS_CANON_H

#include <stddef.h>
#include <libpq-fe.h>

/* rows fetched per round trip when walking entries through a cursor */
#define CANON_FETCH_ROWS 2000

/* called once per entry in entry order; line is NUL-terminated, without
 * the "\n"; returns C_OK to go on, C_ERR to stop the walk */
typedef int (*canon_line_fn)(void *ctx, long long entry_id, const char *line,
    size_t len);

/* the select list and joins of one entry row; append "WHERE <cond>" and
 * " ORDER BY e.id" (columns in the order canon_line_build reads them) */
extern const char canon_sql_select[];

/* the canonical line of row `row` of a result of canon_sql_select:
 * malloc'd, compact JSON with sorted keys; *len_out its length */
char *canon_line_build(const PGresult *res, int row, size_t *len_out);

/* walks the entries matching where_sql (a fixed condition on e.* with
 * $1..$n, never a value) in entry order through a cursor, inside the
 * caller's transaction (one is opened and committed if none is open).
 * C_OK, or C_ERR with a one-line reason in err. */
int canon_foreach(PGconn *pg, const char *where_sql, int nparams,
    const char *const *params, canon_line_fn fn, void *ctx, char *err,
    size_t errcap);

/* the entries of one settlement period */
int canon_period_foreach(PGconn *pg, const char *label, canon_line_fn fn,
    void *ctx, char *err, size_t errcap);

#endif
