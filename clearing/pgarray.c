/* pgarray.c - array literal builder. Grows by doubling; asserts on OOM. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgarray.h"
#include "pts_assert.h"

static void
pgarray_reserve(struct pgarray *a, size_t more)
{
	if (a->len + more + 2 <= a->cap)
		return;
	while (a->len + more + 2 > a->cap)
		a->cap = a->cap == 0 ? 256 : a->cap * 2;
	a->buf = realloc(a->buf, a->cap);
	PTS_ASSERT(a->buf != NULL);
}

void
pgarray_init(struct pgarray *a)
{
	memset(a, 0, sizeof(*a));
	pgarray_reserve(a, 1);
	a->buf[a->len++] = '{';
}

void
pgarray_add(struct pgarray *a, const char *v, size_t len)
{
	pgarray_reserve(a, 2 * len + 8);
	if (a->count++ > 0)
		a->buf[a->len++] = ',';
	if (v == NULL) {
		memcpy(a->buf + a->len, "NULL", 4);
		a->len += 4;
		return;
	}
	a->buf[a->len++] = '"';
	for (size_t i = 0; i < len; i++) {
		if (v[i] == '"' || v[i] == '\\')
			a->buf[a->len++] = '\\';
		a->buf[a->len++] = v[i];
	}
	a->buf[a->len++] = '"';
}

void
pgarray_add_str(struct pgarray *a, const char *v)
{
	pgarray_add(a, v, v != NULL ? strlen(v) : 0);
}

void
pgarray_add_ll(struct pgarray *a, long long v)
{
	char n[24];
	int w = snprintf(n, sizeof(n), "%lld", v);

	pgarray_add(a, n, (size_t)w);
}

const char *
pgarray_finish(struct pgarray *a)
{
	pgarray_reserve(a, 2);
	a->buf[a->len++] = '}';
	a->buf[a->len] = '\0';
	return a->buf;
}

void
pgarray_free(struct pgarray *a)
{
	free(a->buf);
	memset(a, 0, sizeof(*a));
}
