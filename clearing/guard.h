/* guard.h - the limits of protocol.md §6 that libevent does not enforce:
 * an absolute deadline per request and per idle period (evhttp's timeout
 * only measures inactivity, so a client dribbling a byte at a time would
 * live for ever), a global budget for buffered request bodies, and the
 * per-partner cap on requests in flight. */
#ifndef PTS_GUARD_H
#define PTS_GUARD_H

#include <event2/bufferevent.h>
#include <event2/http.h>

#include "server.h"

/* at accept: arm the handshake/idle deadline, watch the first byte */
int guard_conn_open(struct conn_info *ci, struct event_base *base, struct bufferevent *bev);
void guard_conn_close(struct conn_info *ci);
/* a whole request has arrived: its deadline is met */
void guard_request_arrived(struct evhttp_request *req, struct conn_info *ci);

int guard_partner_enter(const char *partner);   /* C_ERR: over partner_inflight_max */
void guard_partner_leave(const char *partner);

#endif
