/* testutil.h - helpers shared by the Check suites (each suite is its own
 * program, so these are static). Tests run from the repository root. */
#ifndef PTS_TESTUTIL_H
#define PTS_TESTUTIL_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

/* the whole file, NUL-terminated; *len_out (if not NULL) its length */
static inline char *
test_read_file(const char *path, size_t *len_out)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	ck_assert_msg(f != NULL, "cannot open %s", path);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_int_ge(n, 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	if (len_out != NULL)
		*len_out = (size_t)n;
	return buf;
}

#endif
