/* reply.c - HTTP replies: problem+json for every refusal, the §4 reply
 * object for postings. Never decides an outcome; only renders one. */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>

#include "clearing/message.h"
#include "log.h"
#include "metrics.h"
#include "reply.h"

json_t *
reply_problem_object(enum err e, const char *detail)
{
	return json_pack("{s:s, s:s, s:i, s:s, s:s}",
	    "type", "about:blank", "title", err_title(e), "status", err_http_status(e),
	    "code", err_code(e), "detail", detail != NULL ? detail : err_title(e));
}

/* one JSON line per request: who, what, the answer */
static void
reply_log(struct evhttp_request *req, int status)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
	SSL *ssl = bev != NULL ? bufferevent_openssl_get_ssl(bev) : NULL;
	const struct conn_info *ci = ssl != NULL ? SSL_get_ex_data(ssl, conn_ex_index) : NULL;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	char p[300], who[100];

	log_event(LOG_INFO, "request", "\"method\":\"%s\",\"path\":%s,\"partner\":%s,\"status\":%d",
	    evhttp_request_get_command(req) == EVHTTP_REQ_POST ? "POST" :
	    evhttp_request_get_command(req) == EVHTTP_REQ_GET ? "GET" : "OTHER",
	    log_json_str(p, sizeof(p), path != NULL ? path : ""),
	    log_json_str(who, sizeof(who), ci != NULL && ci->ident_ready ? ci->cn : ""), status);
}

void
reply_json(struct evhttp_request *req, int status, const char *content_type,
    const char *body, size_t len)
{
	struct evbuffer *buf = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	metrics_count_status(status);
	reply_log(req, status);
	evhttp_add_header(h, "Content-Type", content_type);
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (status == 503)
		evhttp_add_header(h, "Retry-After", "1");
	if (buf == NULL) {
		evhttp_send_reply(req, 500, "Internal Server Error", NULL);
		return;
	}
	evbuffer_add(buf, body, len);
	evhttp_send_reply(req, status, NULL, buf);
	evbuffer_free(buf);
}

void
reply_problem(struct evhttp_request *req, enum err e, const char *detail)
{
	json_t *o = reply_problem_object(e, detail);
	char *body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;

	if (e == ERR_METHOD_NOT_ALLOWED)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
		    detail != NULL && strstr(detail, "POST") != NULL ? "POST" : "GET");
	if (body == NULL) {
		evhttp_send_reply(req, 500, "Internal Server Error", NULL);
	} else {
		reply_json(req, err_http_status(e), "application/problem+json", body,
		    strlen(body));
	}
	free(body);
	json_decref(o);
}

json_t *
reply_item_object(const struct post_item *it)
{
	return json_pack("{s:s, s:b, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:s}",
	    "status", "posted", "replayed", it->replayed,
	    "partner", it->partner, "id", it->id,
	    "type", message_type_name(it->msg.type), "member", it->msg.member,
	    "points", (json_int_t)it->msg.points, "balance", (json_int_t)it->balance,
	    "entry", (json_int_t)it->entry, "accepted_at", it->accepted_at,
	    "period", it->period, "receipt", it->receipt != NULL ? it->receipt : "");
}
