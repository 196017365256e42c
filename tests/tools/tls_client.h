/* tls_client.h - the mutual-TLS client connection shared by the abuse test
 * tools (slowread, idleconns): blocking connect and handshake with a
 * partner certificate. Test code only; never linked into pointsd. */
#ifndef PTS_TLS_CLIENT_H
#define PTS_TLS_CLIENT_H

#include <openssl/ssl.h>

struct tls_opts {
	const char *host;       /* numeric IPv4 address */
	int port;
	const char *cert, *key, *ca;
	int rcvbuf_bytes;       /* SO_RCVBUF before connect; 0 = default */
};

SSL_CTX *tls_client_ctx(const struct tls_opts *o);
/* connected, handshaked SSL on a blocking socket, or NULL (reason on stderr) */
SSL *tls_client_open(SSL_CTX *ctx, const struct tls_opts *o);
void tls_client_close(SSL *ssl);
long long tls_now_ms(void);

#endif
