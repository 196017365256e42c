/* pgarray.h - PostgreSQL array literals ({"a","b",NULL}) for set-based
 * statements: one parameter carries a whole group. Values are escaped. */
#ifndef PTS_PGARRAY_H
#define PTS_PGARRAY_H

#include <stddef.h>

struct pgarray {
	char *buf;
	size_t len, cap;
	size_t count;
};

void pgarray_init(struct pgarray *a);
void pgarray_add(struct pgarray *a, const char *v, size_t len);  /* v NULL: NULL */
void pgarray_add_str(struct pgarray *a, const char *v);
void pgarray_add_ll(struct pgarray *a, long long v);
const char *pgarray_finish(struct pgarray *a);   /* NUL-terminated literal */
void pgarray_free(struct pgarray *a);

#endif
