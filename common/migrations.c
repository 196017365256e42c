/* migrations.c - facts about the embedded migrations; applying them is cli/cmd_init.c. */
#include "migrations.h"

int
migrations_latest(void)
{
	int v = 0;

	for (size_t i = 0; i < migrations_count; i++)
		if (migrations[i].version > v)
			v = migrations[i].version;
	return v;
}
