/* route.h - the pure parts of the request path, kept apart from libevent so
 * they can be unit-tested and fuzzed: routing a path, the media type rule,
 * and splitting a batch body into lines. */
#ifndef PTS_ROUTE_H
#define PTS_ROUTE_H

#include <stddef.h>

enum route { R_NONE, R_MESSAGES, R_BATCHES, R_MESSAGE, R_MEMBER, R_KEYS,
	R_SETTLEMENTS, R_SETTLEMENT };

/* the route of path; arg receives the {id}/{member}/{batch} part; *is_post
 * tells which method the route takes (POST, else GET) */
enum route route_match(const char *path, char *arg, size_t cap, int *is_post);

/* Content-Type is application/jose (case-insensitive, parameters allowed) */
int route_is_jose(const char *content_type);

struct batch_line {
	const char *p;
	size_t len;
};

/* lines of a batch body: a line ends at '\n'; a final '\n' ends the last
 * line and starts none; an empty body is one empty line. Returns the count
 * (which may exceed max: the caller refuses), filling at most max lines. */
size_t route_split_batch(const char *body, size_t len, struct batch_line *lines, size_t max);

#endif
