/* groupkeys.c - the conflict rule of the writer's two connections: two
 * groups share a member (whose messages keep their arrival order) or a
 * message id, posted or named by a reverse (a reverse and its original, or
 * two copies of one id). Kept apart from writer.c so that the rule has a
 * unit test (tests/unit/test_groupkeys.c). */
#include <stdio.h>
#include <string.h>

#include "groupkeys.h"
#include "pts_assert.h"

static void
group_keys_add(json_t *keys, const char *tag, const char *a, const char *b)
{
	char k[2 + sizeof(((struct post_item *)0)->partner) + 1 + sizeof(((struct message *)0)->id)];
	int len = b != NULL ? snprintf(k, sizeof(k), "%s:%s:%s", tag, a, b) :
	    snprintf(k, sizeof(k), "%s:%s", tag, a);

	PTS_ASSERT(len > 0 && (size_t)len < sizeof(k));
	json_object_setn_new_nocheck(keys, k, (size_t)len, json_null());
}

json_t *
group_keys(struct post_item *const *items, size_t n)
{
	json_t *keys = json_object();

	PTS_ASSERT(keys != NULL);
	for (size_t i = 0; i < n; i++) {
		const struct post_item *it = items[i];

		if (it->pre_error == ERR_OK) {
			group_keys_add(keys, "m", it->msg.member, NULL);
			if (it->msg.reverses[0] != '\0')
				group_keys_add(keys, "i", it->partner, it->msg.reverses);
		}
		if (it->id[0] != '\0')
			group_keys_add(keys, "i", it->partner, it->id);
	}
	return keys;
}

int
group_keys_conflict(const json_t *a, const json_t *b)
{
	const char *key;
	size_t len;
	json_t *v;

	if (json_object_size(a) > json_object_size(b)) {
		const json_t *t = a;
		a = b;
		b = t;
	}
	/* (the foreach macro takes a non-const object; it only reads it) */
	json_object_keylen_foreach((json_t *)a, key, len, v) {
		if (json_object_getn(b, key, len) != NULL)
			return 1;
	}
	return 0;
}
