/* slowread.c - a slow or non-reading HTTPS client over real mutual TLS, for
 * tests/integration/52_slow_clients.sh (protocol.md §6). Sends one request
 * (or --repeat pipelined copies), then for --slow-s seconds reads --chunk
 * bytes (one) every --delay-ms (or nothing with --no-read), then drains at full speed
 * and prints one JSON line: how much came, whether the first reply was
 * complete, and how the connection ended. Test code; never part of pointsd. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "tls_client.h"

struct sr_opts {
	struct tls_opts tls;
	const char *path, *body_file;
	int repeat, delay_ms, slow_s, drain_s, no_read, chunk_bytes;
};

struct sr_state {
	char head[8192];
	size_t head_len;
	long long bytes, content_length, body_seen;
	int status, header_done;
};

static void
sr_usage(void)
{
	fprintf(stderr, "usage: slowread --port P --cert C --key K --ca CA [--host 127.0.0.1]\n"
	    "  [--path /v1/keys] [--body FILE (POST application/jose)] [--repeat N]\n"
	    "  [--delay-ms 10] [--chunk BYTES (1)] [--slow-s 8] [--drain-s 10] [--rcvbuf BYTES]\n"
	    "  [--no-read]\n");
	exit(2);
}

static void
sr_parse(int argc, char **argv, struct sr_opts *o)
{
	static const struct option lo[] = {
		{ "host", 1, 0, 'h' }, { "port", 1, 0, 'p' }, { "cert", 1, 0, 'c' },
		{ "key", 1, 0, 'k' }, { "ca", 1, 0, 'a' }, { "path", 1, 0, 'P' },
		{ "body", 1, 0, 'b' }, { "repeat", 1, 0, 'r' }, { "delay-ms", 1, 0, 'd' },
		{ "slow-s", 1, 0, 's' }, { "drain-s", 1, 0, 'D' }, { "rcvbuf", 1, 0, 'R' },
		{ "no-read", 0, 0, 'n' }, { "chunk", 1, 0, 'C' }, { 0, 0, 0, 0 } };
	int c;

	memset(o, 0, sizeof(*o));
	o->tls.host = "127.0.0.1";
	o->path = "/v1/keys";
	o->repeat = 1;
	o->delay_ms = 10;
	o->slow_s = 8;
	o->drain_s = 10;
	o->chunk_bytes = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'h': o->tls.host = optarg; break;
		case 'p': o->tls.port = (int)strtol(optarg, NULL, 10); break;
		case 'c': o->tls.cert = optarg; break;
		case 'k': o->tls.key = optarg; break;
		case 'a': o->tls.ca = optarg; break;
		case 'P': o->path = optarg; break;
		case 'b': o->body_file = optarg; break;
		case 'r': o->repeat = (int)strtol(optarg, NULL, 10); break;
		case 'd': o->delay_ms = (int)strtol(optarg, NULL, 10); break;
		case 's': o->slow_s = (int)strtol(optarg, NULL, 10); break;
		case 'D': o->drain_s = (int)strtol(optarg, NULL, 10); break;
		case 'R': o->tls.rcvbuf_bytes = (int)strtol(optarg, NULL, 10); break;
		case 'n': o->no_read = 1; break;
		case 'C': o->chunk_bytes = (int)strtol(optarg, NULL, 10); break;
		default: sr_usage();
		}
	}
	if (o->tls.port <= 0 || o->tls.cert == NULL || o->tls.key == NULL ||
	    o->tls.ca == NULL || o->repeat < 1 || o->chunk_bytes < 1)
		sr_usage();
}

/* the request bytes (malloc'd), repeated o->repeat times */
static char *
sr_request(const struct sr_opts *o, size_t *len)
{
	char head[512], *body = NULL, *out;
	size_t body_len = 0, hl, one;
	FILE *f;

	if (o->body_file != NULL) {
		f = fopen(o->body_file, "rb");
		if (f == NULL || fseek(f, 0, SEEK_END) != 0) {
			perror(o->body_file);
			exit(2);
		}
		body_len = (size_t)ftell(f);
		rewind(f);
		body = malloc(body_len + 1);
		if (body == NULL || fread(body, 1, body_len, f) != body_len)
			exit(2);
		fclose(f);
		hl = (size_t)snprintf(head, sizeof(head), "POST %s HTTP/1.1\r\nHost: %s\r\n"
		    "Content-Type: application/jose\r\nContent-Length: %zu\r\n\r\n",
		    o->path, o->tls.host, body_len);
	} else {
		hl = (size_t)snprintf(head, sizeof(head), "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n",
		    o->path, o->tls.host);
	}
	one = hl + body_len;
	*len = one * (size_t)o->repeat;
	out = malloc(*len);
	if (out == NULL)
		exit(2);
	for (int i = 0; i < o->repeat; i++) {
		memcpy(out + one * (size_t)i, head, hl);
		if (body_len > 0)
			memcpy(out + one * (size_t)i + hl, body, body_len);
	}
	free(body);
	return out;
}

/* tracks the first reply's status line, Content-Length and body bytes */
static void
sr_account(struct sr_state *st, const unsigned char *p, size_t n)
{
	st->bytes += (long long)n;
	for (size_t i = 0; i < n; i++) {
		if (st->header_done) {
			st->body_seen++;
			continue;
		}
		if (st->head_len < sizeof(st->head) - 1)
			st->head[st->head_len++] = (char)p[i];
		st->head[st->head_len] = '\0';
		if (st->head_len >= 4 && memcmp(st->head + st->head_len - 4, "\r\n\r\n", 4) == 0) {
			char *cl = strcasestr(st->head, "\r\ncontent-length:");
			st->header_done = 1;
			st->status = (int)strtol(st->head + 9, NULL, 10);
			st->content_length = cl != NULL ? strtoll(cl + 17, NULL, 10) : -1;
		}
	}
}

/* "eof", "reset", "timeout" or "tls-error" */
static const char *
sr_read(SSL *ssl, struct sr_state *st, size_t chunk, long long until_ms, int delay_ms)
{
	unsigned char buf[16384];
	int n, e;

	while (tls_now_ms() < until_ms) {
		ERR_clear_error();
		n = SSL_read(ssl, buf, (int)(chunk < sizeof(buf) ? chunk : sizeof(buf)));
		if (n > 0) {
			sr_account(st, buf, (size_t)n);
			if (delay_ms > 0)
				usleep((useconds_t)delay_ms * 1000);
			continue;
		}
		e = SSL_get_error(ssl, n);
		if (e == SSL_ERROR_ZERO_RETURN)
			return "eof";
		if (e == SSL_ERROR_WANT_READ)
			continue;   /* SO_RCVTIMEO expired: check the clock */
		if (e == SSL_ERROR_SYSCALL)
			return errno == ECONNRESET ? "reset" : (errno == EAGAIN ? "timeout" : "eof");
		return "tls-error";
	}
	return "timeout";
}

int
main(int argc, char **argv)
{
	struct sr_opts o;
	struct sr_state st;
	struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
	SSL_CTX *ctx;
	SSL *ssl;
	char *req;
	size_t req_len;
	long long t0, slow_end;
	const char *end = "timeout";

	sr_parse(argc, argv, &o);
	memset(&st, 0, sizeof(st));
	st.content_length = -1;
	req = sr_request(&o, &req_len);
	ctx = tls_client_ctx(&o.tls);
	ssl = ctx != NULL ? tls_client_open(ctx, &o.tls) : NULL;
	if (ssl == NULL) {
		printf("{\"error\":\"connect\"}\n");
		return 1;
	}
	setsockopt(SSL_get_fd(ssl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	t0 = tls_now_ms();
	if (SSL_write(ssl, req, (int)req_len) != (int)req_len) {
		printf("{\"error\":\"write\"}\n");
		return 1;
	}
	slow_end = t0 + (long long)o.slow_s * 1000;
	if (o.no_read) {
		while (tls_now_ms() < slow_end)
			usleep(50000);
	} else {
		end = sr_read(ssl, &st, (size_t)o.chunk_bytes, slow_end, o.delay_ms);
	}
	if (strcmp(end, "timeout") == 0)
		end = sr_read(ssl, &st, 16384, tls_now_ms() + (long long)o.drain_s * 1000, 0);
	printf("{\"bytes\":%lld,\"status\":%d,\"content_length\":%lld,\"body\":%lld,"
	    "\"complete\":%d,\"end\":\"%s\",\"elapsed_ms\":%lld}\n",
	    st.bytes, st.status, st.content_length, st.body_seen,
	    st.content_length >= 0 && st.body_seen >= st.content_length, end,
	    tls_now_ms() - t0);
	tls_client_close(ssl);
	SSL_CTX_free(ctx);
	free(req);
	return 0;
}
