/* metrics.c - what pointsd counts and how it shows it. Never blocks a
 * request: counters are atomics, rendering reads them without locks. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "metrics.h"
#include "server.h"

static const int metrics_statuses[] = { 200, 201, 400, 401, 403, 404, 405, 409,
	413, 415, 422, 500, 503 };
#define N_STATUS (sizeof(metrics_statuses) / sizeof(metrics_statuses[0]))
#define N_TYPES 4   /* unknown, issue, redeem, reverse */
static const double group_bounds[] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 10000 };
#define N_GROUP (sizeof(group_bounds) / sizeof(group_bounds[0]))
/* the bounds of every time histogram, in microseconds */
static const long long time_bounds_us[] = { 250, 500, 1000, 2000, 4000, 8000, 16000,
	32000, 64000, 128000, 256000, 512000, 1024000, 2048000 };
#define N_TIME (sizeof(time_bounds_us) / sizeof(time_bounds_us[0]))

struct time_hist {
	const char *name, *help;
	atomic_llong bucket[N_TIME + 1], count, sum_us;
};

/* a posting transaction; a message's wait in the writer's queue (arrival to
 * its group being taken); a message's whole stay with the writer (arrival
 * to its answer handed back, COMMIT and receipt included) */
static struct time_hist m_commit = { "pointsd_commit_seconds",
	"Time of one posting transaction, BEGIN to COMMIT.", { 0 }, 0, 0 };
static struct time_hist m_queue_wait = { "pointsd_queue_wait_seconds",
	"Time a posting request waited in the writer queue before its group was taken.", { 0 }, 0, 0 };
static struct time_hist m_posting = { "pointsd_posting_seconds",
	"Time from a posting request entering the writer queue to its answer (queue, group, COMMIT).",
	{ 0 }, 0, 0 };
static const char *const event_names[] = { "settle_run", "expiry_run", "db_reconnect" };
#define N_EVENTS (sizeof(event_names) / sizeof(event_names[0]))

static atomic_llong m_status[N_STATUS + 1];
static atomic_llong m_messages[N_TYPES][ERR__COUNT];
static atomic_llong m_replays;
static atomic_llong m_group_bucket[N_GROUP + 1], m_group_count, m_group_sum;
static atomic_llong m_events[N_EVENTS];

void
metrics_count_status(int http_status)
{
	size_t i = 0;

	while (i < N_STATUS && metrics_statuses[i] != http_status)
		i++;
	atomic_fetch_add_explicit(&m_status[i], 1, memory_order_relaxed);
}

void
metrics_count_message(enum msg_type type, enum err result, int replayed)
{
	int t = (int)type >= 1 && (int)type <= 3 ? (int)type : 0;

	if ((int)result < 0 || result >= ERR__COUNT)
		result = ERR_INTERNAL;
	atomic_fetch_add_explicit(&m_messages[t][result], 1, memory_order_relaxed);
	if (replayed)
		atomic_fetch_add_explicit(&m_replays, 1, memory_order_relaxed);
}

static void
time_hist_observe(struct time_hist *h, long long us)
{
	size_t i = 0;

	if (us < 0)
		us = 0;
	while (i < N_TIME && us > time_bounds_us[i])
		i++;
	atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
}

static void
time_hist_render(struct evbuffer *b, struct time_hist *h)
{
	long long cum = 0, sum = atomic_load(&h->sum_us);

	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", h->name, h->help, h->name);
	for (size_t i = 0; i <= N_TIME; i++) {
		cum += atomic_load(&h->bucket[i]);
		if (i < N_TIME)
			evbuffer_add_printf(b, "%s_bucket{le=\"%lld.%06lld\"} %lld\n", h->name,
			    time_bounds_us[i] / 1000000, time_bounds_us[i] % 1000000, cum);
		else
			evbuffer_add_printf(b, "%s_bucket{le=\"+Inf\"} %lld\n", h->name, cum);
	}
	evbuffer_add_printf(b, "%s_sum %lld.%06lld\n%s_count %lld\n", h->name, sum / 1000000,
	    sum % 1000000, h->name, (long long)atomic_load(&h->count));
}

void
metrics_observe_group(size_t messages, long long commit_us)
{
	size_t i = 0;

	while (i < N_GROUP && (double)messages > group_bounds[i])
		i++;
	atomic_fetch_add_explicit(&m_group_bucket[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m_group_count, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m_group_sum, (long long)messages, memory_order_relaxed);
	time_hist_observe(&m_commit, commit_us);
}

void
metrics_observe_queue_wait(long long us)
{
	time_hist_observe(&m_queue_wait, us);
}

void
metrics_observe_posting(long long us)
{
	time_hist_observe(&m_posting, us);
}

void
metrics_count_event(const char *name)
{
	for (size_t i = 0; i < N_EVENTS; i++)
		if (strcmp(event_names[i], name) == 0)
			atomic_fetch_add_explicit(&m_events[i], 1, memory_order_relaxed);
}

static void
metrics_render(struct evbuffer *b)
{
	static const char *const tnames[N_TYPES] = { "unknown", "issue", "redeem", "reverse" };
	long long cum = 0;

	evbuffer_add_printf(b, "# HELP pointsd_http_requests_total Partner API replies by HTTP status.\n"
	    "# TYPE pointsd_http_requests_total counter\n");
	for (size_t i = 0; i <= N_STATUS; i++) {
		long long v = atomic_load(&m_status[i]);
		if (i < N_STATUS)
			evbuffer_add_printf(b, "pointsd_http_requests_total{status=\"%d\"} %lld\n",
			    metrics_statuses[i], v);
		else
			evbuffer_add_printf(b, "pointsd_http_requests_total{status=\"other\"} %lld\n", v);
	}
	evbuffer_add_printf(b, "# HELP pointsd_messages_total Messages judged, by type and result code.\n"
	    "# TYPE pointsd_messages_total counter\n");
	for (int t = 0; t < N_TYPES; t++)
		for (int e = 0; e < ERR__COUNT; e++) {
			long long v = atomic_load(&m_messages[t][e]);
			if (v > 0 || (e == ERR_OK && t > 0))
				evbuffer_add_printf(b, "pointsd_messages_total{type=\"%s\",code=\"%s\"} %lld\n",
				    tnames[t], err_code((enum err)e), v);
		}
	evbuffer_add_printf(b, "# HELP pointsd_replays_total Messages answered as idempotent replays.\n"
	    "# TYPE pointsd_replays_total counter\npointsd_replays_total %lld\n",
	    (long long)atomic_load(&m_replays));
	evbuffer_add_printf(b, "# HELP pointsd_group_messages Messages per group-commit transaction.\n"
	    "# TYPE pointsd_group_messages histogram\n");
	for (size_t i = 0; i <= N_GROUP; i++) {
		cum += atomic_load(&m_group_bucket[i]);
		if (i < N_GROUP)
			evbuffer_add_printf(b, "pointsd_group_messages_bucket{le=\"%g\"} %lld\n", group_bounds[i], cum);
		else
			evbuffer_add_printf(b, "pointsd_group_messages_bucket{le=\"+Inf\"} %lld\n", cum);
	}
	evbuffer_add_printf(b, "pointsd_group_messages_sum %lld\npointsd_group_messages_count %lld\n",
	    (long long)atomic_load(&m_group_sum), (long long)atomic_load(&m_group_count));
	time_hist_render(b, &m_commit);
	time_hist_render(b, &m_queue_wait);
	time_hist_render(b, &m_posting);
	evbuffer_add_printf(b, "# HELP pointsd_queue_messages Messages waiting for the database writer.\n"
	    "# TYPE pointsd_queue_messages gauge\npointsd_queue_messages %zu\n", g_server.writeq.nmessages);
	evbuffer_add_printf(b, "# HELP pointsd_connections Open partner connections.\n"
	    "# TYPE pointsd_connections gauge\npointsd_connections %lld\n",
	    (long long)atomic_load(&g_server.connections));
	evbuffer_add_printf(b, "# HELP pointsd_inflight_requests Requests waiting for the database.\n"
	    "# TYPE pointsd_inflight_requests gauge\npointsd_inflight_requests %lld\n",
	    (long long)atomic_load(&g_server.inflight));
	evbuffer_add_printf(b, "# HELP pointsd_database_up Whether the last database contact succeeded.\n"
	    "# TYPE pointsd_database_up gauge\npointsd_database_up %d\n", atomic_load(&g_server.db_up));
	for (size_t i = 0; i < N_EVENTS; i++)
		evbuffer_add_printf(b, "# HELP pointsd_%ss_total Count of %s events.\n"
		    "# TYPE pointsd_%ss_total counter\npointsd_%ss_total %lld\n", event_names[i],
		    event_names[i], event_names[i], event_names[i], (long long)atomic_load(&m_events[i]));
}

static void
metrics_handle(struct evhttp_request *req, void *arg)
{
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	struct evbuffer *b = evbuffer_new();
	int status = 200;

	(void)arg;
	if (b == NULL || path == NULL) {
		evhttp_send_error(req, 500, NULL);
		evbuffer_free(b);
		return;
	}
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		status = 405;
		evbuffer_add_printf(b, "method not allowed\n");
	} else if (strcmp(path, "/metrics") == 0) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
		    "text/plain; version=0.0.4; charset=utf-8");
		metrics_render(b);
	} else if (strcmp(path, "/healthz") == 0) {
		evbuffer_add_printf(b, "ok\n");
	} else if (strcmp(path, "/readyz") == 0) {
		/* ready: the schema was current at start and the database answers */
		status = atomic_load(&g_server.db_up) && !atomic_load(&g_server.stopping) ? 200 : 503;
		evbuffer_add_printf(b, status == 200 ? "ready\n" : "not ready\n");
	} else {
		status = 404;
		evbuffer_add_printf(b, "not found\n");
	}
	evhttp_send_reply(req, status, NULL, b);
	evbuffer_free(b);
}

int
metrics_start(struct event_base *base, const char *addr_port, char *err, size_t errcap)
{
	struct evhttp *http;
	int fd;

	if (addr_port[0] == '\0')
		return C_OK;
	fd = listener_open(addr_port, 0, err, errcap);
	if (fd < 0)
		return C_ERR;
	http = evhttp_new(base);
	if (http == NULL || evhttp_accept_socket_with_handle(http, fd) == NULL) {
		snprintf(err, errcap, "metrics listener %s", addr_port);
		return C_ERR;
	}
	evhttp_set_gencb(http, metrics_handle, NULL);
	evhttp_set_default_content_type(http, "text/plain; charset=utf-8");
	return C_OK;
}
