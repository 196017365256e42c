/* lg_conn.c - loadgen's connections: one libevent loop per thread, mutual
 * TLS client connections with keep-alive, a minimal HTTP/1.1 client, the
 * closed-loop, open-loop, handshake, idle and resend modes.
 * Never signs (messages are signed before the timed part) and never runs
 * past its deadline. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/err.h>

#include "errors.h"
#include "loadgen.h"

#define LG_MAX_HEADER_BYTES 65536
#define LG_BACKLOG_MAX (1u << 20)
#define LG_TICK_US 500
#define LG_RECONNECT_MS 100
#define LG_CONNECT_PHASE_MS 120000

enum lg_state { CS_NEW, CS_CONNECTING, CS_READY, CS_BUSY, CS_WAIT };

struct lg_loop;

struct lg_conn {
	struct lg_loop *lp;
	int partner;
	enum lg_state state;
	struct bufferevent *bev;
	struct lg_msg *msgs;      /* the request's messages (contiguous in a pool) */
	size_t nmsgs;
	int is_get;
	long long t_sched_us;
	int hdr_done, close_after;
	long status;
	size_t body_len;
	unsigned gen;             /* bumped when the bufferevent is freed */
	int in_ready;
	struct lg_conn *next_ready;
};

struct lg_loop {
	struct lg_thread *th;
	struct event_base *base;
	struct lg_conn *conns;
	int nconns;
	struct lg_conn *ready;    /* idle connections, open loop */
	int connecting, connected_phase, busy, next_connect;
	int timed, stopping;
	long long sent_messages;
	long long *backlog;       /* scheduled send times, a ring */
	size_t bl_head, bl_len;
	long long scheduled;      /* open loop: requests scheduled so far */
	struct event *tick_ev, *stop_ev, *drain_ev;
	struct sockaddr_in sa;
};

atomic_int lg_established, lg_failed;

static void lg_conn_start(struct lg_conn *c);
static void lg_conn_next(struct lg_conn *c);

static void
lg_loop_maybe_done(struct lg_loop *lp)
{
	if (!lp->timed) {
		if (lp->connecting == 0 && lp->next_connect >= lp->nconns)
			event_base_loopbreak(lp->base);
		return;
	}
	if (lp->stopping && lp->busy == 0)
		event_base_loopbreak(lp->base);
}

static void
lg_conn_drop(struct lg_conn *c)
{
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	c->bev = NULL;
	c->gen++;
	if (c->state == CS_BUSY)
		c->lp->busy--;
	if (c->state == CS_CONNECTING)
		c->lp->connecting--;
	c->state = CS_NEW;
	c->hdr_done = 0;
}

static void
lg_reconnect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lg_conn *c = arg;

	(void)fd; (void)what;
	if (c->state == CS_WAIT && !c->lp->stopping)
		lg_conn_start(c);
	else if (c->state == CS_WAIT)
		c->state = CS_NEW;
}

/* a broken connection: count it, and come back later unless stopping */
static void
lg_conn_fail(struct lg_conn *c, int during_request)
{
	struct lg_loop *lp = c->lp;
	struct timeval tv = { 0, LG_RECONNECT_MS * 1000 };

	if (during_request)
		lp->th->stats.transport_errors++;
	lg_conn_drop(c);
	if (lp->timed && !lp->stopping && lg.mode != LG_IDLE) {
		c->state = CS_WAIT;
		event_base_once(lp->base, -1, EV_TIMEOUT, lg_reconnect_cb, c, &tv);
	}
	lg_loop_maybe_done(lp);
}

static void
lg_count_code(struct lg_stats *s, const char *body)
{
	const char *p = body != NULL ? strstr(body, "\"code\":\"") : NULL;
	char code[40];
	size_t n = 0;

	if (p == NULL) {
		lg_stats_code(s, "no_code");
		return;
	}
	p += 8;
	while (p[n] != '"' && p[n] != '\0' && n < sizeof(code) - 1) {
		code[n] = p[n];
		n++;
	}
	code[n] = '\0';
	lg_stats_code(s, code);
}

static void
lg_resend_line(struct lg_thread *th, const struct lg_msg *m, long status, const char *outcome,
    const char *code, long long entry)
{
	if (th->resend_out == NULL)
		return;
	fprintf(th->resend_out, "{\"partner\":\"%s\",\"id\":\"%s\",\"sha256\":\"%s\",\"status\":%ld,"
	    "\"outcome\":\"%s\",\"code\":\"%s\",\"entry\":%lld}\n", lg.partners[m->partner].id,
	    m->id, m->sha256, status, outcome, code, entry);
}

/* POST /v1/messages: status, code, acknowledged id */
static void
lg_reply_single(struct lg_conn *c, const char *body)
{
	struct lg_stats *s = &c->lp->th->stats;
	const char *e;
	char code[40] = "";
	long long entry;

	s->messages++;
	if (c->status == 201 || c->status == 200) {
		s->ok_messages++;
		if (c->status == 201)
			s->posted++;
		else
			s->replayed++;
		e = strstr(body, "\"entry\":");
		entry = e != NULL ? strtoll(e + 8, NULL, 10) : -1;
		lg_ack_write(c->msgs, entry);
		lg_resend_line(c->lp->th, c->msgs, c->status, c->status == 201 ? "posted" : "replayed",
		    "", entry);
		return;
	}
	lg_count_code(s, body);
	e = strstr(body, "\"code\":\"");
	if (e != NULL)
		sscanf(e + 8, "%39[a-z_]", code);
	lg_resend_line(c->lp->th, c->msgs, c->status, "other", code, -1);
}

/* POST /v1/batches: one result per line */
static void
lg_reply_batch(struct lg_conn *c, const char *body, size_t len)
{
	struct lg_stats *s = &c->lp->th->stats;
	json_t *o = json_loadb(body, len, 0, NULL);
	json_t *res = o != NULL ? json_object_get(o, "results") : NULL;
	size_t n = json_array_size(res);

	s->messages += (long long)c->nmsgs;
	if (c->status != 200 || n != c->nmsgs) {
		for (size_t i = 0; i < c->nmsgs; i++)
			lg_count_code(s, c->status == 200 ? "{\"code\":\"bad_batch_reply\"}" : body);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *r = json_array_get(res, i);
		const char *code = json_string_value(json_object_get(r, "code"));

		if (code != NULL) {
			lg_stats_code(s, code);
			continue;
		}
		s->ok_messages++;
		if (json_is_true(json_object_get(r, "replayed")))
			s->replayed++;
		else
			s->posted++;
		lg_ack_write(&c->msgs[i], json_integer_value(json_object_get(r, "entry")));
	}
out:
	json_decref(o);
}

static void
lg_reply_done(struct lg_conn *c, const char *body, size_t len)
{
	struct lg_loop *lp = c->lp;
	struct lg_stats *s = &lp->th->stats;

	s->requests++;
	if (c->status >= 200 && c->status < 300)
		s->status_2xx++;
	else if (c->status >= 400 && c->status < 500)
		s->status_4xx++;
	else
		s->status_5xx++;
	lg_stats_latency(s, lg_now_us() - c->t_sched_us);
	if (c->is_get) {
		if (c->status != 200)
			lg_count_code(s, body);
	} else if (lg.batch_lines > 0) {
		lg_reply_batch(c, body, len);
	} else {
		lg_reply_single(c, body);
	}
	c->state = CS_READY;
	lp->busy--;
	if (lg.mode == LG_HANDSHAKES) {
		s->handshakes++;
		lg_conn_drop(c);
		if (!lp->stopping)
			lg_conn_start(c);
	} else if (c->close_after) {
		lg_conn_fail(c, 0);
		return;
	}
	lg_conn_next(c);
	lg_loop_maybe_done(lp);
}

/* header block: status line and Content-Length; C_ERR on anything else */
static int
lg_parse_header(struct lg_conn *c, const char *h, size_t len)
{
	char buf[LG_MAX_HEADER_BYTES + 1];
	const char *cl;

	memcpy(buf, h, len);
	buf[len] = '\0';
	if (sscanf(buf, "HTTP/1.%*d %ld", &c->status) != 1)
		return C_ERR;
	cl = strcasestr(buf, "\r\ncontent-length:");
	if (cl == NULL)
		return C_ERR;
	c->body_len = (size_t)strtoull(cl + 17, NULL, 10);
	c->close_after = strcasestr(buf, "\r\nconnection: close") != NULL;
	return C_OK;
}

static void
lg_read_cb(struct bufferevent *bev, void *arg)
{
	struct lg_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	unsigned gen = c->gen;
	int one = 1;

	if (lg.quickack)   /* diagnosis: ack at once, defeating delayed ACKs */
		(void)setsockopt((int)bufferevent_getfd(bev), IPPROTO_TCP, TCP_QUICKACK, &one,
		    sizeof(one));
	while (c->state == CS_BUSY) {
		if (!c->hdr_done) {
			struct evbuffer_ptr p = evbuffer_search(in, "\r\n\r\n", 4, NULL);

			if (p.pos < 0) {
				if (evbuffer_get_length(in) > LG_MAX_HEADER_BYTES)
					lg_conn_fail(c, 1);
				return;
			}
			if ((size_t)p.pos + 4 > LG_MAX_HEADER_BYTES ||
			    lg_parse_header(c, (const char *)evbuffer_pullup(in, p.pos + 4),
			    (size_t)p.pos + 4) != C_OK) {
				lg_conn_fail(c, 1);
				return;
			}
			evbuffer_drain(in, (size_t)p.pos + 4);
			c->hdr_done = 1;
		}
		if (evbuffer_get_length(in) < c->body_len)
			return;
		{
			char *body = malloc(c->body_len + 1);

			if (body == NULL) {
				lg_conn_fail(c, 1);
				return;
			}
			evbuffer_remove(in, body, c->body_len);
			body[c->body_len] = '\0';
			c->hdr_done = 0;
			lg_reply_done(c, body, c->body_len);
			free(body);
		}
		if (c->gen != gen)   /* dropped or restarted in lg_reply_done */
			return;
	}
}

static void
lg_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct lg_conn *c = arg;
	struct lg_loop *lp = c->lp;
	int fd = (int)bufferevent_getfd(bev), one = 1;

	if (what & BEV_EVENT_CONNECTED) {
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		lp->connecting--;
		c->state = CS_READY;
		if (!lp->timed)
			atomic_fetch_add(&lg_established, 1);
		if (lp->timed)
			lg_conn_next(c);
		else if (lp->next_connect < lp->nconns)
			lg_conn_start(&lp->conns[lp->next_connect++]);
		lg_loop_maybe_done(lp);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
		int was = c->state;

		if (was == CS_READY)
			lg_stats_code(&lp->th->stats, "closed_idle");
		if (was == CS_CONNECTING) {
			lp->th->stats.connect_failures++;
			if (!lp->timed) {
				atomic_fetch_add(&lg_failed, 1);
				if (lp->next_connect < lp->nconns)
					lg_conn_start(&lp->conns[lp->next_connect++]);
			}
		}
		lg_conn_fail(c, was == CS_BUSY);
	}
}

static void
lg_conn_start(struct lg_conn *c)
{
	struct lg_loop *lp = c->lp;
	SSL *ssl;

	ERR_clear_error();
	ssl = SSL_new(lg.partners[c->partner].ctx);
	c->bev = ssl != NULL ? bufferevent_openssl_socket_new(lp->base, -1, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE) : NULL;
	if (c->bev == NULL) {
		SSL_free(ssl);
		lp->th->stats.connect_failures++;
		c->state = CS_NEW;
		return;
	}
	c->state = CS_CONNECTING;
	lp->connecting++;
	c->hdr_done = 0;
	bufferevent_setcb(c->bev, lg_read_cb, NULL, lg_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&lp->sa, sizeof(lp->sa)) != 0)
		lg_event_cb(c->bev, BEV_EVENT_ERROR, c);
}

/* writes the request for c->msgs / c->nmsgs (or GET /v1/keys) */
static void
lg_conn_send(struct lg_conn *c, long long t_sched_us)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t len = 0;
	const char *path = lg.batch_lines > 0 ? "/v1/batches" : "/v1/messages";

	c->t_sched_us = t_sched_us;
	c->state = CS_BUSY;
	c->hdr_done = 0;
	c->lp->busy++;
	if (c->is_get) {
		evbuffer_add_printf(out, "GET /v1/keys HTTP/1.1\r\nHost: %s\r\n\r\n", lg.host);
		return;
	}
	for (size_t i = 0; i < c->nmsgs; i++)
		len += c->msgs[i].len + (lg.batch_lines > 0 ? 1 : 0);
	evbuffer_add_printf(out, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/jose\r\n"
	    "Content-Length: %zu\r\n\r\n", path, lg.host, len);
	for (size_t i = 0; i < c->nmsgs; i++) {
		evbuffer_add(out, c->msgs[i].jws, c->msgs[i].len);
		if (lg.batch_lines > 0)
			evbuffer_add(out, "\n", 1);
	}
}

/* the next request's messages from this connection's pool; 0 when empty */
static int
lg_conn_take(struct lg_conn *c)
{
	struct lg_loop *lp = c->lp;
	struct lg_pool *pool = &lp->th->pools[c->partner];
	size_t want = lg.batch_lines > 0 ? (size_t)lg.batch_lines : 1;

	c->is_get = lg.mode == LG_HANDSHAKES;
	if (c->is_get)
		return 1;
	if (lp->th->count > 0 && lp->sent_messages >= lp->th->count)
		return 0;
	if (pool->next >= pool->n) {
		if (lg.mode != LG_RESEND)
			lp->th->exhausted = 1;
		return 0;
	}
	if (want > pool->n - pool->next)
		want = pool->n - pool->next;
	c->msgs = &pool->msgs[pool->next];
	c->nmsgs = want;
	pool->next += want;
	lp->sent_messages += (long long)want;
	return 1;
}

static void
lg_backlog_push(struct lg_loop *lp, long long t_us)
{
	if (lp->bl_len == LG_BACKLOG_MAX) {
		lg_stats_code(&lp->th->stats, "loadgen_backlog_full");
		return;
	}
	lp->backlog[(lp->bl_head + lp->bl_len) % LG_BACKLOG_MAX] = t_us;
	lp->bl_len++;
}

static long long
lg_backlog_pop(struct lg_loop *lp)
{
	long long t = lp->backlog[lp->bl_head];

	lp->bl_head = (lp->bl_head + 1) % LG_BACKLOG_MAX;
	lp->bl_len--;
	return t;
}

/* a connection that is ready takes the next request, or waits for one */
static void
lg_conn_next(struct lg_conn *c)
{
	struct lg_loop *lp = c->lp;

	if (c->state != CS_READY || lp->stopping || lg.mode == LG_IDLE || !lp->timed)
		return;
	if (lg.rate > 0 && lp->bl_len == 0) {
		if (!c->in_ready) {
			c->in_ready = 1;
			c->next_ready = lp->ready;
			lp->ready = c;
		}
		return;
	}
	if (!lg_conn_take(c)) {
		if (lg.mode != LG_RESEND || lp->busy == 0)
			lp->stopping = 1;
		lg_loop_maybe_done(lp);
		return;
	}
	lg_conn_send(c, lg.rate > 0 ? lg_backlog_pop(lp) : lg_now_us());
}

/* open loop: schedule what is due since the start, hand it to ready
 * connections; latency counts from the scheduled time */
static void
lg_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lg_loop *lp = arg;
	long long now = lg_now_us(), due, rate = lp->th->rate;

	(void)fd; (void)what;
	if (lp->stopping)
		return;
	due = (now - lp->th->start_us) * rate / 1000000;
	for (; lp->scheduled < due; lp->scheduled++)
		lg_backlog_push(lp, lp->th->start_us + lp->scheduled * 1000000 / rate);
	while (lp->bl_len > 0 && lp->ready != NULL && !lp->stopping) {
		struct lg_conn *c = lp->ready;

		lp->ready = c->next_ready;
		c->in_ready = 0;
		lg_conn_next(c);
	}
}

static void
lg_stop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lg_loop *lp = arg;

	(void)fd; (void)what;
	lp->stopping = 1;
	if (lp->tick_ev != NULL)
		event_del(lp->tick_ev);
	lg_loop_maybe_done(lp);
}

static void
lg_break_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lg_loop *lp = arg;

	(void)fd; (void)what;
	event_base_loopbreak(lp->base);
}

static void
lg_timer_us(struct lg_loop *lp, struct event **ev, int flags, event_callback_fn cb,
    long long us)
{
	struct timeval tv = { (time_t)(us / 1000000), (suseconds_t)(us % 1000000) };

	*ev = event_new(lp->base, -1, flags, cb, lp);
	if (*ev != NULL)
		event_add(*ev, &tv);
}

/* connections before the timed part, at most connect_parallel at once */
static void
lg_phase_connect(struct lg_loop *lp)
{
	struct event *guard = NULL;

	if (lg.mode == LG_HANDSHAKES || lp->nconns == 0)
		return;
	lg_timer_us(lp, &guard, 0, lg_break_cb, LG_CONNECT_PHASE_MS * 1000LL);
	while (lp->next_connect < lp->nconns && lp->next_connect < lg.connect_parallel)
		lg_conn_start(&lp->conns[lp->next_connect++]);
	event_base_dispatch(lp->base);
	event_free(guard);
}

static void
lg_phase_timed(struct lg_loop *lp)
{
	long long limit_ms = lg.duration_ms > 0 ? lg.duration_ms : 600000;

	lp->timed = 1;
	lp->th->start_us = lg_now_us();
	lg_timer_us(lp, &lp->stop_ev, 0, lg_stop_cb, limit_ms * 1000);
	lg_timer_us(lp, &lp->drain_ev, 0, lg_break_cb, (limit_ms + lg.drain_ms) * 1000);
	if (lg.rate > 0 && lg.mode == LG_LOAD)
		lg_timer_us(lp, &lp->tick_ev, EV_PERSIST, lg_tick_cb, LG_TICK_US);
	for (int i = 0; i < lp->nconns; i++) {
		if (lg.mode == LG_HANDSHAKES)
			lg_conn_start(&lp->conns[i]);
		else
			lg_conn_next(&lp->conns[i]);
	}
	lg_loop_maybe_done(lp);
	if (!(lp->stopping && lp->busy == 0))
		event_base_dispatch(lp->base);
	lp->th->end_us = lg_now_us();
}

extern pthread_barrier_t lg_barrier;

void *
lg_thread_main(void *arg)
{
	struct lg_thread *th = arg;
	struct lg_loop loop, *lp = &loop;

	memset(lp, 0, sizeof(*lp));
	lp->th = th;
	lp->nconns = th->nconns;
	lp->base = event_base_new();
	lp->conns = calloc((size_t)th->nconns + 1, sizeof(*lp->conns));
	lp->backlog = lg.rate > 0 ? calloc(LG_BACKLOG_MAX, sizeof(*lp->backlog)) : NULL;
	lp->sa.sin_family = AF_INET;
	lp->sa.sin_port = htons((uint16_t)lg.port);
	if (lp->base == NULL || lp->conns == NULL || (lg.rate > 0 && lp->backlog == NULL) ||
	    inet_pton(AF_INET, lg.host, &lp->sa.sin_addr) != 1) {
		fprintf(stderr, "loadgen: thread %d cannot start\n", th->index);
		exit(2);
	}
	for (int i = 0; i < lp->nconns; i++) {
		lp->conns[i].lp = lp;
		lp->conns[i].partner = (th->first_conn + i) % lg.npartners;
	}
	lg_phase_connect(lp);
	pthread_barrier_wait(&lg_barrier);   /* every thread connected */
	pthread_barrier_wait(&lg_barrier);   /* main has announced the start */
	lg_phase_timed(lp);
	for (int i = 0; i < lp->nconns; i++)
		if (lp->conns[i].bev != NULL)
			bufferevent_free(lp->conns[i].bev);
	if (lp->tick_ev != NULL)
		event_free(lp->tick_ev);
	event_free(lp->stop_ev);
	event_free(lp->drain_ev);
	event_base_free(lp->base);
	free(lp->conns);
	free(lp->backlog);
	return NULL;
}
