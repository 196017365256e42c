/* pts_assert.h - always-on assertions: log file, line and condition, then abort.
 * Used for invariants (balanced transfers, bounds), never for input checks. */
#ifndef PTS_ASSERT_H
#define PTS_ASSERT_H

void pts_assert_fail(const char *cond, const char *file, int line)
    __attribute__((noreturn));

#define PTS_ASSERT(cond) \
	do { \
		if (!(cond)) \
			pts_assert_fail(#cond, __FILE__, __LINE__); \
	} while (0)

#endif
