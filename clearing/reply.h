/* reply.h - every HTTP reply of the partner API: problem+json errors
 * (RFC 9457) built from errors.def, and the JSON bodies of successes. */
#ifndef PTS_REPLY_H
#define PTS_REPLY_H

#include <event2/http.h>
#include <jansson.h>

#include "errors.h"
#include "server.h"

void reply_problem(struct evhttp_request *req, enum err e, const char *detail);
void reply_json(struct evhttp_request *req, int status, const char *content_type,
    const char *body, size_t len);
/* the reply object of protocol.md §4 for a posted or replayed item */
json_t *reply_item_object(const struct post_item *it);
json_t *reply_problem_object(enum err e, const char *detail);

#endif
