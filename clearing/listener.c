/* listener.c - the partner front door: TLS context (mutual TLS, CRL,
 * TLS >= 1.2, AEAD suites only), listening sockets shared by the worker
 * loops through SO_REUSEPORT, and the per-connection bookkeeping.
 * Never parses HTTP bodies or touches the database. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <openssl/pem.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "pts_limits.h"
#include "log.h"
#include "guard.h"
#include "metrics.h"
#include "pts_assert.h"
#include "server.h"

/* TLS 1.2 suites: ECDHE only (no RSA key exchange), AEAD only (no CBC) */
#define TLS12_CIPHERS "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305"

static SSL_CTX *refuse_ctx;

static void
tls_err(char *err, size_t errcap, const char *what)
{
	char e[256];

	ERR_error_string_n(ERR_get_error(), e, sizeof(e));
	snprintf(err, errcap, "%s: %s", what, e);
}

/* per-connection facts, freed with the SSL object (which the bufferevent
 * frees when evhttp frees the connection): the count of open connections
 * goes down exactly once per connection */
static void
conn_ssl_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
	if (ptr != NULL) {
		guard_conn_close(ptr);
		free(ptr);
		atomic_fetch_sub(&g_server.connections, 1);
	}
}

int conn_ex_index = -1;

SSL_CTX *
tls_ctx_build(const struct conf *c, char *err, size_t errcap)
{
	SSL_CTX *ctx = NULL;
	X509_STORE *store;
	static const unsigned char sid_ctx[] = "pointsd";

	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		tls_err(err, errcap, "tls context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
		tls_err(err, errcap, "tls cipher list");
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, c->tls_cert) != 1) {
		tls_err(err, errcap, "tls_cert");
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, c->tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		tls_err(err, errcap, "tls_key");
		goto fail;
	}
	if (SSL_CTX_load_verify_locations(ctx, c->tls_ca, NULL) != 1) {
		tls_err(err, errcap, "tls_ca");
		goto fail;
	}
	SSL_CTX_set_client_CA_list(ctx, SSL_load_client_CA_file(c->tls_ca));
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_verify_depth(ctx, 4);
	SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
	if (c->tls_crl[0] != '\0') {
		store = SSL_CTX_get_cert_store(ctx);
		if (X509_load_crl_file(X509_STORE_add_lookup(store, X509_LOOKUP_file()), c->tls_crl,
		    X509_FILETYPE_PEM) < 1) {
			tls_err(err, errcap, "tls_crl");
			goto fail;
		}
		X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* a context whose every handshake fails at once: used past max_connections */
static int
refuse_hello_cb(SSL *ssl, int *alert, void *arg)
{
	(void)ssl; (void)arg;
	*alert = SSL_AD_HANDSHAKE_FAILURE;
	return SSL_CLIENT_HELLO_ERROR;
}

/* the CRL also judges live connections, on their next request */
static int
tls_crl_load(const char *path, X509_CRL **out, char *err, size_t errcap)
{
	FILE *f;

	*out = NULL;
	if (path[0] == '\0')
		return C_OK;
	f = fopen(path, "r");
	if (f != NULL)
		*out = PEM_read_X509_CRL(f, NULL, NULL, NULL);
	if (f != NULL)
		fclose(f);
	if (*out == NULL) {
		snprintf(err, errcap, "tls_crl: cannot read %s", path);
		return C_ERR;
	}
	return C_OK;
}

int
tls_ctx_reload(struct server *s, char *err, size_t errcap)
{
	SSL_CTX *ctx = tls_ctx_build(&s->conf, err, errcap), *old;
	X509_CRL *crl, *old_crl;

	if (ctx == NULL)
		return C_ERR;
	if (tls_crl_load(s->conf.tls_crl, &crl, err, errcap) != C_OK) {
		SSL_CTX_free(ctx);
		return C_ERR;
	}
	pthread_mutex_lock(&s->ssl_mu);
	old = s->ssl_ctx;
	old_crl = s->crl;
	s->ssl_ctx = ctx;
	s->crl = crl;
	atomic_fetch_add(&s->crl_gen, 1);
	if (refuse_ctx == NULL) {
		refuse_ctx = SSL_CTX_new(TLS_server_method());
		PTS_ASSERT(refuse_ctx != NULL);
		SSL_CTX_set_client_hello_cb(refuse_ctx, refuse_hello_cb, NULL);
	}
	if (conn_ex_index < 0)
		conn_ex_index = SSL_get_ex_new_index(1, NULL, NULL, NULL, conn_ssl_free);
	pthread_mutex_unlock(&s->ssl_mu);
	SSL_CTX_free(old);    /* live connections keep their own reference */
	X509_CRL_free(old_crl);
	return C_OK;
}

static struct bufferevent *
listener_bevcb(struct event_base *base, void *arg)
{
	struct server *s = arg;
	SSL *ssl;
	struct conn_info *ci;
	struct bufferevent *bev;
	long long n = atomic_fetch_add(&s->connections, 1) + 1;

	pthread_mutex_lock(&s->ssl_mu);
	ssl = SSL_new(n > s->conf.max_connections ? refuse_ctx : s->ssl_ctx);
	pthread_mutex_unlock(&s->ssl_mu);
	if (ssl == NULL) {
		atomic_fetch_sub(&s->connections, 1);
		return NULL;
	}
	/* the ex_data free callback counts the connection down when SSL is freed */
	ci = calloc(1, sizeof(*ci));
	if (ci == NULL) {
		SSL_free(ssl);
		atomic_fetch_sub(&s->connections, 1);
		return NULL;
	}
	SSL_set_ex_data(ssl, conn_ex_index, ci);
	bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev != NULL && guard_conn_open(ci, base, bev) != C_OK) {
		bufferevent_free(bev);
		bev = NULL;
	}
	return bev;
}

int
listener_open(const char *addr_port, int reuseport, char *err, size_t errcap)
{
	char host[128];
	const char *colon = strrchr(addr_port, ':');
	struct addrinfo hints, *ai = NULL;
	int fd = -1, one = 1;

	if (colon == NULL || (size_t)(colon - addr_port) >= sizeof(host)) {
		snprintf(err, errcap, "listen: expected address:port, got %s", addr_port);
		return -1;
	}
	memcpy(host, addr_port, (size_t)(colon - addr_port));
	host[colon - addr_port] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	if (getaddrinfo(host[0] != '\0' ? host : NULL, colon + 1, &hints, &ai) != 0) {
		snprintf(err, errcap, "listen: bad address %s", addr_port);
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
	    /* accepted sockets inherit it: a reply must not wait for Nagle */
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
		snprintf(err, errcap, "listen %s: %s", addr_port, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

static void
worker_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct job *j, *next;

	(void)fd; (void)what;
	pthread_mutex_lock(&w->done_mu);
	j = w->done_head;
	w->done_head = NULL;
	pthread_mutex_unlock(&w->done_mu);
	for (; j != NULL; j = next) {
		next = j->next;
		request_finish(j);
	}
}

void
worker_deliver(struct worker *w, struct job *j)
{
	pthread_mutex_lock(&w->done_mu);
	j->next = w->done_head;
	w->done_head = j;
	pthread_mutex_unlock(&w->done_mu);
	event_active(w->done_ev, EV_READ, 0);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	/* the loop lives until drain_and_exit ends it, also once it stops listening */
	event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

int
worker_start(struct server *s, struct worker *w)
{
	char err[256];
	struct timeval idle = {
		.tv_sec = s->conf.idle_timeout_ms / 1000,
		.tv_usec = (s->conf.idle_timeout_ms % 1000) * 1000,
	};

	w->base = event_base_new();
	w->http = w->base != NULL ? evhttp_new(w->base) : NULL;
	w->done_ev = w->base != NULL ? event_new(w->base, -1, EV_PERSIST, worker_done_cb, w) : NULL;
	if (w->http == NULL || w->done_ev == NULL)
		return C_ERR;
	pthread_mutex_init(&w->done_mu, NULL);
	event_add(w->done_ev, NULL);
	evhttp_set_bevcb(w->http, listener_bevcb, s);
	evhttp_set_gencb(w->http, request_handle, w);
	evhttp_set_max_headers_size(w->http, LIMIT_HEADER_BYTES);
	/* one byte over still reaches request.c, which answers problem+json */
	evhttp_set_max_body_size(w->http, LIMIT_BATCH_BYTES + 1);
	evhttp_set_timeout_tv(w->http, &idle);
	evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
	    EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_default_content_type(w->http, "application/json");
	w->bound = evhttp_accept_socket_with_handle(w->http, w->listen_fd);
	if (w->bound == NULL)
		return C_ERR;
	if (w->index == 0 && metrics_start(w->base, s->conf.metrics_listen, err, sizeof(err)) != C_OK) {
		log_event(LOG_ERROR, "metrics_listen_failed", "\"error\":\"%s\"", err);
		return C_ERR;
	}
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
		return C_ERR;
	return C_OK;
}
