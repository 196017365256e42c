/* migrations.h - the SQL migrations of sql/, embedded at build time. */
#ifndef PTS_MIGRATIONS_H
#define PTS_MIGRATIONS_H

#include <stddef.h>

struct migration {
	int version;
	const char *name;
	const char *sql;
};

extern const struct migration migrations[];
extern const size_t migrations_count;

/* the highest version: pointsd's /readyz compares it with the database */
int migrations_latest(void);

#endif
