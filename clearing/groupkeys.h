/* groupkeys.h - what two posting groups must not share to be posted side by
 * side on two writer connections (clearing/writer.c). */
#ifndef PTS_GROUPKEYS_H
#define PTS_GROUPKEYS_H

#include <stddef.h>

#include <jansson.h>

#include "server.h"

/* the keys of a group's items, a JSON object used as a set: "m:<member>"
 * of every item that may change the ledger (pre_error ERR_OK), "i:<partner>:
 * <id>" of every item's id and of every reverse's original. Never NULL. */
json_t *group_keys(struct post_item *const *items, size_t n);
/* 1 if the two key sets share a key: the newer group must wait until the
 * older one is past post_group() (its locks then held) */
int group_keys_conflict(const json_t *a, const json_t *b);

#endif
