/* idleconns.c - opens N mutual-TLS connections that complete the handshake
 * and then send nothing, for tests/integration/52_slow_clients.sh
 * (protocol.md §6). Prints "opened N" when all are up, then waits up to
 * --hold-s seconds for the server to close them and prints one JSON line:
 * how many it closed and when (ms after the handshake). Test code only. */
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tls_client.h"

struct idle_conn {
	SSL *ssl;
	long long opened_ms, closed_ms;
};

static void
idle_usage(void)
{
	fprintf(stderr, "usage: idleconns --port P --cert C --key K --ca CA [--host 127.0.0.1]\n"
	    "  [--n 1000] [--hold-s 20]\n");
	exit(2);
}

/* 1 if the peer has closed (EOF, alert or reset) */
static int
idle_peer_closed(SSL *ssl)
{
	unsigned char b[256];
	int n = SSL_read(ssl, b, sizeof(b));

	return n <= 0 && SSL_get_error(ssl, n) != SSL_ERROR_WANT_READ;
}

static void
idle_wait(struct idle_conn *c, int n, long long until_ms, int *closed)
{
	struct pollfd *p = calloc((size_t)n, sizeof(*p));

	if (p == NULL)
		exit(2);
	while (*closed < n && tls_now_ms() < until_ms) {
		for (int i = 0; i < n; i++) {
			p[i].fd = c[i].ssl != NULL && c[i].closed_ms == 0 ? SSL_get_fd(c[i].ssl) : -1;
			p[i].events = POLLIN;
			p[i].revents = 0;
		}
		if (poll(p, (nfds_t)n, 200) <= 0)
			continue;
		for (int i = 0; i < n; i++) {
			if (p[i].fd < 0 || p[i].revents == 0)
				continue;
			if (idle_peer_closed(c[i].ssl)) {
				c[i].closed_ms = tls_now_ms();
				(*closed)++;
			}
		}
	}
	free(p);
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "host", 1, 0, 'h' }, { "port", 1, 0, 'p' }, { "cert", 1, 0, 'c' },
		{ "key", 1, 0, 'k' }, { "ca", 1, 0, 'a' }, { "n", 1, 0, 'n' },
		{ "hold-s", 1, 0, 's' }, { 0, 0, 0, 0 } };
	struct tls_opts o = { .host = "127.0.0.1" };
	struct idle_conn *c;
	int n = 1000, hold_s = 20, opened = 0, closed = 0, opt;
	long long t_open, min_ms = -1, max_ms = -1;
	SSL_CTX *ctx;

	while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (opt) {
		case 'h': o.host = optarg; break;
		case 'p': o.port = (int)strtol(optarg, NULL, 10); break;
		case 'c': o.cert = optarg; break;
		case 'k': o.key = optarg; break;
		case 'a': o.ca = optarg; break;
		case 'n': n = (int)strtol(optarg, NULL, 10); break;
		case 's': hold_s = (int)strtol(optarg, NULL, 10); break;
		default: idle_usage();
		}
	}
	if (o.port <= 0 || o.cert == NULL || o.key == NULL || o.ca == NULL || n < 1)
		idle_usage();
	ctx = tls_client_ctx(&o);
	c = calloc((size_t)n, sizeof(*c));
	if (ctx == NULL || c == NULL)
		return 2;
	t_open = tls_now_ms();
	for (int i = 0; i < n; i++) {
		c[i].ssl = tls_client_open(ctx, &o);
		c[i].opened_ms = tls_now_ms();
		opened += c[i].ssl != NULL;
	}
	printf("opened %d in %lld ms\n", opened, tls_now_ms() - t_open);
	fflush(stdout);
	idle_wait(c, n, tls_now_ms() + (long long)hold_s * 1000, &closed);
	for (int i = 0; i < n; i++) {
		long long d;
		if (c[i].ssl == NULL || c[i].closed_ms == 0)
			continue;
		d = c[i].closed_ms - c[i].opened_ms;
		if (min_ms < 0 || d < min_ms)
			min_ms = d;
		if (d > max_ms)
			max_ms = d;
	}
	printf("{\"opened\":%d,\"closed\":%d,\"min_close_ms\":%lld,\"max_close_ms\":%lld}\n",
	    opened, closed, min_ms, max_ms);
	for (int i = 0; i < n; i++)
		tls_client_close(c[i].ssl);
	free(c);
	SSL_CTX_free(ctx);
	return 0;
}
