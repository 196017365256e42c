/* guard.c - deadlines, body budget and per-partner in-flight counts.
 * Closing a connection is done by shutting its socket down, so that evhttp
 * notices and frees it on its own; we never free what evhttp owns. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/keyvalq_struct.h>

#include "guard.h"
#include "log.h"
#include "pts_assert.h"
#include "pts_limits.h"

#define GUARD_PARTNER_SLOTS 4096

struct partner_slot {
	char id[65];
	long long inflight;
};

static pthread_mutex_t guard_mu = PTHREAD_MUTEX_INITIALIZER;
static struct partner_slot guard_slots[GUARD_PARTNER_SLOTS];

static void
guard_arm(struct conn_info *ci, long long ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	event_add(ci->deadline_ev, &tv);
}

static void
guard_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn_info *ci = arg;

	(void)fd; (void)what;
	log_event(LOG_INFO, "connection_deadline", "\"phase\":\"%s\"",
	    ci->in_request ? "request" : "idle");
	shutdown(bufferevent_getfd(ci->bev), SHUT_RDWR);
}

/* bytes arriving: the first byte of a request starts its deadline, and
 * every byte counts against the global budget of buffered requests until
 * the request's reply is written (libevent 2.1 has no hook before it reads
 * a body, so past the budget the connection is closed unread) */
static void
guard_input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct conn_info *ci = arg;
	long long total;

	(void)buf;
	if (info->n_added == 0)
		return;
	ci->body_reserved += (long long)info->n_added;
	total = atomic_fetch_add(&g_server.body_bytes, (long long)info->n_added) +
	    (long long)info->n_added;
	if (total > g_server.conf.body_buffer_max_bytes) {
		log_event(LOG_WARN, "body_budget_exhausted", "\"buffered_bytes\":%lld", total);
		shutdown(bufferevent_getfd(ci->bev), SHUT_RDWR);
		return;
	}
	if (ci->in_request)
		return;
	ci->in_request = 1;
	guard_arm(ci, g_server.conf.request_deadline_ms);
}

int
guard_conn_open(struct conn_info *ci, struct event_base *base, struct bufferevent *bev)
{
	ci->bev = bev;
	ci->deadline_ev = event_new(base, -1, 0, guard_deadline_cb, ci);
	if (ci->deadline_ev == NULL ||
	    evbuffer_add_cb(bufferevent_get_input(bev), guard_input_cb, ci) == NULL)
		return C_ERR;
	/* the handshake and the first request's first byte: the idle deadline */
	guard_arm(ci, g_server.conf.idle_timeout_ms);
	return C_OK;
}

static void
guard_body_release(struct conn_info *ci)
{
	if (ci->body_reserved > 0)
		atomic_fetch_sub(&g_server.body_bytes, ci->body_reserved);
	ci->body_reserved = 0;
}

void
guard_conn_close(struct conn_info *ci)
{
	guard_body_release(ci);
	if (ci->deadline_ev != NULL)
		event_free(ci->deadline_ev);
	ci->deadline_ev = NULL;
}

/* the reply is written: the connection is idle until the next first byte */
static void
guard_request_done(struct evhttp_request *req, void *arg)
{
	struct conn_info *ci = arg;

	(void)req;
	guard_body_release(ci);
	ci->in_request = 0;
	if (ci->deadline_ev != NULL)
		guard_arm(ci, g_server.conf.idle_timeout_ms);
}

void
guard_request_arrived(struct evhttp_request *req, struct conn_info *ci)
{
	if (ci->deadline_ev != NULL)
		event_del(ci->deadline_ev);
	evhttp_request_set_on_complete_cb(req, guard_request_done, ci);
}

static struct partner_slot *
guard_slot_locked(const char *partner)
{
	unsigned h = 2166136261u;

	for (const char *p = partner; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	for (unsigned i = 0; i < GUARD_PARTNER_SLOTS; i++) {
		struct partner_slot *s = &guard_slots[(h + i) % GUARD_PARTNER_SLOTS];
		if (s->id[0] == '\0')
			snprintf(s->id, sizeof(s->id), "%s", partner);
		if (strcmp(s->id, partner) == 0)
			return s;
	}
	return NULL;
}

int
guard_partner_enter(const char *partner)
{
	struct partner_slot *s;
	int rc = C_ERR;

	pthread_mutex_lock(&guard_mu);
	s = guard_slot_locked(partner);
	if (s != NULL && s->inflight < g_server.conf.partner_inflight_max) {
		s->inflight++;
		rc = C_OK;
	}
	pthread_mutex_unlock(&guard_mu);
	return rc;
}

void
guard_partner_leave(const char *partner)
{
	struct partner_slot *s;

	pthread_mutex_lock(&guard_mu);
	s = guard_slot_locked(partner);
	PTS_ASSERT(s != NULL && s->inflight > 0);
	s->inflight--;
	pthread_mutex_unlock(&guard_mu);
}
