/* request.c - one partner request from arrival to the job queue: client
 * identity, routing, media type and size limits, JWS checks and signature
 * verification (on the worker thread, in parallel on every core), then the
 * job for the database threads; and the replies when a job comes back.
 * Never talks to the database and never replies before a job's commit. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "clearing/jws.h"
#include "clearing/receipt.h"
#include "pts_limits.h"
#include "guard.h"
#include "log.h"
#include "metrics.h"
#include "partners/certfp.h"
#include "partners/registry.h"
#include "pts_assert.h"
#include "reply.h"
#include "route.h"
#include "server.h"

/* the client certificate's CN and fingerprint, computed once per connection */
static struct conn_info *
request_client(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
	SSL *ssl = bev != NULL ? bufferevent_openssl_get_ssl(bev) : NULL;
	struct conn_info *ci = ssl != NULL ? SSL_get_ex_data(ssl, conn_ex_index) : NULL;
	X509 *cert;

	if (ci == NULL)
		return NULL;
	if (!ci->ident_ready) {
		cert = SSL_get0_peer_certificate(ssl);
		if (cert == NULL || certfp_sha256_hex(cert, ci->fp) != C_OK ||
		    certfp_cn(cert, ci->cn, sizeof(ci->cn)) != C_OK)
			return NULL;
		ci->ident_ready = 1;
	}
	/* a CRL loaded since the handshake also applies to this connection */
	if (ci->crl_gen != atomic_load(&g_server.crl_gen)) {
		X509_REVOKED *rev = NULL;

		pthread_mutex_lock(&g_server.ssl_mu);
		ci->crl_gen = atomic_load(&g_server.crl_gen);
		cert = SSL_get0_peer_certificate(ssl);
		ci->revoked = g_server.crl != NULL && cert != NULL &&
		    X509_CRL_get0_by_cert(g_server.crl, &rev, cert) == 1;
		pthread_mutex_unlock(&g_server.ssl_mu);
	}
	return ci;
}

static int
request_is_jose(struct evhttp_request *req)
{
	return route_is_jose(evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Content-Type"));
}

/* checks of protocol.md §2.1 that need no database, in order; the first
 * failure wins. A failure before the id is known is terminal. */
static void
request_prepare_item(struct post_item *it, const char *bytes, size_t len,
    const char *partner, const struct registry *reg, long long now_s)
{
	struct jws t;
	const struct reg_key *key;
	enum err e;
	const char *detail = NULL;

	memset(it, 0, sizeof(*it));
	snprintf(it->partner, sizeof(it->partner), "%s", partner);
	if (len > LIMIT_MESSAGE_BYTES) {
		it->terminal = 1;
		it->result = ERR_PAYLOAD_TOO_LARGE;
		it->detail = "a message is at most 16384 bytes";
		return;
	}
	it->jws = malloc(len + 1);
	PTS_ASSERT(it->jws != NULL);
	memcpy(it->jws, bytes, len);
	it->jws[len] = '\0';
	it->jws_len = len;
	sha256_hex(bytes, len, it->sha256);
	e = jws_parse(it->jws, len, &t);
	if (e != ERR_OK) {
		it->terminal = 1;
		it->result = e;
		it->detail = t.detail;
		goto out;
	}
	snprintf(it->kid, sizeof(it->kid), "%s", t.kid);
	if (t.payload != NULL && message_peek_id(t.payload, it->id) != C_OK)
		it->id[0] = '\0';
	/* always validate, so a replay can be answered from its own bytes */
	e = message_validate(t.payload, &it->msg, &detail);
	key = registry_find_key(reg, partner, t.kid, t.alg, now_s);
	if (key == NULL) {
		it->pre_error = ERR_UNKNOWN_KEY;
		it->detail = "kid is not a usable key of this partner for this alg";
	} else if (jws_verify(&t, key->pkey) != ERR_OK) {
		it->pre_error = ERR_INVALID_SIGNATURE;
		it->detail = "signature does not verify";
	} else if (e != ERR_OK) {
		it->pre_error = e;
		it->detail = detail;
	} else if (strcmp(it->msg.partner, partner) != 0) {
		it->pre_error = ERR_PARTNER_MISMATCH;
		it->detail = "payload partner is not the certificate's partner";
	} else if (it->msg.iat < now_s - g_server.conf.iat_window_s ||
	    it->msg.iat > now_s + g_server.conf.iat_window_s) {
		it->pre_error = ERR_STALE_MESSAGE;
		it->detail = "iat is outside the accepted window";
	}
	if (it->pre_error != ERR_OK && it->id[0] == '\0') {
		it->terminal = 1;
		it->result = it->pre_error;
	}
out:
	jws_free(&t);
}

static struct job *
request_job_new(enum job_kind kind, struct worker *w, struct evhttp_request *req,
    const char *partner, size_t nitems)
{
	struct job *j = calloc(1, sizeof(*j));

	PTS_ASSERT(j != NULL);
	snprintf(j->arg_partner, sizeof(j->arg_partner), "%s", partner);
	j->kind = kind;
	j->owner = w;
	j->req = req;
	j->nitems = nitems;
	if (nitems > 0) {
		j->items = calloc(nitems, sizeof(*j->items));
		PTS_ASSERT(j->items != NULL);
	}
	j->enqueued_us = now_us();
	return j;
}

static void
request_submit(struct job *j, struct job_queue *q)
{
	if (guard_partner_enter(j->arg_partner) != C_OK) {
		reply_problem(j->req, ERR_UNAVAILABLE, "too many requests of this partner in flight; retry later");
		job_free(j);
		return;
	}
	atomic_fetch_add(&g_server.inflight, 1);
	if (jobq_push(q, j) != C_OK) {
		reply_problem(j->req, ERR_UNAVAILABLE, "the posting queue is full; resend the identical bytes");
		atomic_fetch_sub(&g_server.inflight, 1);
		guard_partner_leave(j->arg_partner);
		job_free(j);
	}
}

static void
request_post_message(struct worker *w, struct evhttp_request *req, const char *partner,
    const struct registry *reg)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	struct job *j;
	char *body;

	if (!request_is_jose(req)) {
		reply_problem(req, ERR_UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/jose");
		return;
	}
	if (len > LIMIT_MESSAGE_BYTES + 1) {
		reply_problem(req, ERR_PAYLOAD_TOO_LARGE, "a message is at most 16384 bytes");
		return;
	}
	body = (char *)evbuffer_pullup(in, -1);
	/* one final LF (as `curl --data-binary @file` sends it) is not part of the JWS */
	if (len > 0 && body[len - 1] == '\n')
		len--;
	j = request_job_new(JOB_POST, w, req, partner, 1);
	request_prepare_item(&j->items[0], body != NULL ? body : "", len, partner, reg,
	    (long long)time(NULL));
	if (j->items[0].terminal) {
		metrics_count_message(0, j->items[0].result, 0);
		reply_problem(req, j->items[0].result, j->items[0].detail);
		job_free(j);
		return;
	}
	request_submit(j, &g_server.writeq);
}

static void
request_post_batch(struct worker *w, struct evhttp_request *req, const char *partner,
    const struct registry *reg)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in), nlines;
	const char *body;
	long long now_s = (long long)time(NULL);
	struct batch_line *lines;
	struct job *j;

	if (!request_is_jose(req)) {
		reply_problem(req, ERR_UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/jose");
		return;
	}
	if (len > LIMIT_BATCH_BYTES) {
		reply_problem(req, ERR_PAYLOAD_TOO_LARGE, "a batch is at most 16 MiB");
		return;
	}
	body = len > 0 ? (const char *)evbuffer_pullup(in, -1) : "";
	lines = calloc(LIMIT_BATCH_LINES, sizeof(*lines));
	PTS_ASSERT(lines != NULL);
	nlines = route_split_batch(body, len, lines, LIMIT_BATCH_LINES);
	if (nlines > LIMIT_BATCH_LINES) {
		free(lines);
		reply_problem(req, ERR_PAYLOAD_TOO_LARGE, "a batch is at most 10000 lines");
		return;
	}
	j = request_job_new(JOB_BATCH, w, req, partner, nlines);
	for (size_t k = 0; k < nlines; k++)
		request_prepare_item(&j->items[k], lines[k].p, lines[k].len, partner, reg, now_s);
	free(lines);
	request_submit(j, &g_server.writeq);
}

static void
request_read(struct worker *w, struct evhttp_request *req, enum job_kind kind,
    const char *partner, const char *arg)
{
	struct job *j = request_job_new(kind, w, req, partner, 0);

	snprintf(j->arg_key, sizeof(j->arg_key), "%s", arg);
	request_submit(j, &g_server.readq);
}

void
request_handle(struct evhttp_request *req, void *arg)
{
	struct worker *w = arg;
	struct conn_info *ci = request_client(req);
	struct registry *reg = registry_acquire();
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	char rarg[65];
	int is_post;
	enum route r;
	enum err e;

	if (ci != NULL)
		guard_request_arrived(req, ci);
	if (ci == NULL || reg == NULL) {
		reply_problem(req, ci == NULL ? ERR_UNKNOWN_PARTNER : ERR_UNAVAILABLE,
		    ci == NULL ? "no client certificate identity" : "registry not loaded");
		goto out;
	}
	e = ci->revoked ? ERR_UNKNOWN_PARTNER : registry_check_client(reg, ci->cn, ci->fp);
	if (e != ERR_OK) {
		reply_problem(req, e, e == ERR_PARTNER_SUSPENDED ? "partner is not active" :
		    ci->revoked ? "certificate is revoked" :
		    "certificate is not registered for a partner");
		goto out;
	}
	r = route_match(path != NULL ? path : "", rarg, sizeof(rarg), &is_post);
	if (r == R_NONE) {
		reply_problem(req, ERR_NOT_FOUND, "no such resource");
		goto out;
	}
	if (is_post != (method == EVHTTP_REQ_POST) ||
	    (!is_post && method != EVHTTP_REQ_GET)) {
		reply_problem(req, ERR_METHOD_NOT_ALLOWED, is_post ? "use POST" : "use GET");
		goto out;
	}
	switch (r) {
	case R_MESSAGES:
		request_post_message(w, req, ci->cn, reg);
		break;
	case R_BATCHES:
		request_post_batch(w, req, ci->cn, reg);
		break;
	case R_MESSAGE:
		request_read(w, req, JOB_READ_MESSAGE, ci->cn, rarg);
		break;
	case R_MEMBER:
		request_read(w, req, JOB_READ_MEMBER, ci->cn, rarg);
		break;
	case R_SETTLEMENTS:
		request_read(w, req, JOB_READ_SETTLEMENTS, ci->cn, "");
		break;
	case R_SETTLEMENT:
		/* a batch id is digits; anything else is a batch nobody has */
		if (strspn(rarg, "0123456789") != strlen(rarg) || strlen(rarg) > 18)
			reply_problem(req, ERR_NOT_FOUND, "no such settlement batch");
		else
			request_read(w, req, JOB_READ_SETTLEMENT, ci->cn, rarg);
		break;
	case R_KEYS:
		reply_json(req, 200, "application/jwk-set+json", reg->jwks, reg->jwks_len);
		break;
	default:
		PTS_ASSERT(0);
	}
out:
	registry_release(reg);
}

static json_t *
request_item_result(const struct post_item *it)
{
	metrics_count_message(it->result == ERR_OK || it->pre_error == ERR_OK ? it->msg.type : 0,
	    it->result, it->replayed);
	if (it->result == ERR_OK)
		return reply_item_object(it);
	return reply_problem_object(it->result, it->detail);
}

static void
request_finish_post(struct job *j)
{
	struct post_item *it = &j->items[0];
	json_t *o;
	char *body;

	metrics_count_message(it->result == ERR_OK || it->pre_error == ERR_OK ? it->msg.type : 0,
	    it->result, it->replayed);
	if (it->result != ERR_OK) {
		reply_problem(j->req, it->result, it->detail);
		return;
	}
	o = reply_item_object(it);
	body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	PTS_ASSERT(body != NULL);
	reply_json(j->req, it->replayed ? 200 : 201, "application/json", body, strlen(body));
	free(body);
	json_decref(o);
}

static void
request_finish_batch(struct job *j)
{
	json_t *arr = json_array(), *o;
	char *body;

	for (size_t i = 0; i < j->nitems; i++)
		json_array_append_new(arr, request_item_result(&j->items[i]));
	o = json_pack("{s:o}", "results", arr);
	body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	PTS_ASSERT(body != NULL);
	reply_json(j->req, 200, "application/json", body, strlen(body));
	free(body);
	json_decref(o);
}

/* called on the owning worker's loop once the database threads are done */
void
request_finish(struct job *j)
{
	if (j->db_failed) {
		reply_problem(j->req, ERR_UNAVAILABLE,
		    "the ledger is unavailable; the outcome is unknown: resend the identical bytes");
	} else if (j->kind == JOB_POST) {
		request_finish_post(j);
	} else if (j->kind == JOB_BATCH) {
		request_finish_batch(j);
	} else if (j->read_json == NULL) {
		reply_problem(j->req, j->kind == JOB_READ_MEMBER ? ERR_UNKNOWN_MEMBER : ERR_NOT_FOUND,
		    j->kind == JOB_READ_MEMBER ? "member has no account" :
		    j->kind == JOB_READ_SETTLEMENT ? "no such settlement batch" : "no such message");
	} else {
		reply_json(j->req, 200, "application/json", j->read_json, strlen(j->read_json));
	}
	atomic_fetch_sub(&g_server.inflight, 1);
	guard_partner_leave(j->arg_partner);
	job_free(j);
}
