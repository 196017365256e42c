/* conf.c - the configuration keys of pointsd, their defaults and bounds.
 * Parsing is strict: unknown keys, bad numbers and out-of-range values are
 * errors with a line number, never silently ignored. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "errors.h"
#include "pts_limits.h"

#define S(name, def, doc) \
	{ #name, 1, offsetof(struct conf, name), sizeof(((struct conf *)0)->name), 0, 0, def, doc }
#define I(name, min, max, def, doc) \
	{ #name, 0, offsetof(struct conf, name), 0, min, max, def, doc }

const struct conf_key conf_keys[] = {
	S(listen, "127.0.0.1:8443", "address:port of the partner mTLS listener"),
	S(metrics_listen, "127.0.0.1:9443", "address:port of the plain-HTTP /metrics, /healthz, /readyz listener; empty disables"),
	S(db, "host=127.0.0.1 port=54329 dbname=points user=pointsd", "libpq conninfo of the ledger database (role without UPDATE/DELETE on the journal)"),
	S(tls_cert, "var/certs/server.crt", "server certificate chain (PEM)"),
	S(tls_key, "var/certs/server.key", "server private key (PEM)"),
	S(tls_ca, "var/certs/ca.crt", "partner CA certificate(s) (PEM); client certificates must chain to it"),
	S(tls_crl, "", "CRL of the partner CA (PEM); empty: no revocation check"),
	S(receipt_key, "var/certs/receipt.key", "Ed25519 private key signing receipts and seals (PKCS#8 PEM)"),
	S(log_level, "info", "debug, info, warn or error"),
	I(threads, 0, 256, "0", "worker threads (TLS, HTTP, signature checks); 0 = one per core"),
	I(iat_window_s, 0, 86400, "300", "accepted distance in seconds between a new message's iat and server time"),
	I(commit_max_messages, 1, LIMIT_BATCH_LINES, "512", "most messages in one group-commit transaction; 1 = one transaction per message"),
	I(commit_window_us, 0, 1000000, "0", "longest wait in microseconds to gather a group after its first message when no group is in flight; 0 = take what is queued"),
	I(max_connections, 1, 1000000, "10000", "open partner connections; past it new connections are refused"),
	I(partner_inflight_max, 1, 1000000, "1000", "requests of one partner in flight; past it 503 with Retry-After"),
	I(queue_max_messages, 1, 10000000, "65536", "messages waiting for the database writer; past it 503"),
	I(body_buffer_max_bytes, 65536, 1LL << 40, "268435456", "request body bytes buffered across all connections; past it 503"),
	I(request_deadline_ms, 100, 3600000, "30000", "a request not complete this long after its first byte is closed"),
	I(idle_timeout_ms, 100, 3600000, "30000", "an idle keep-alive connection is closed after this"),
	I(db_timeout_ms, 100, 600000, "2000", "a message not committed within this of its arrival gets 503 unavailable"),
	I(settle_auto, 0, 1, "1", "settle each period by itself after cut-off plus grace (1) or only by pointsctl (0)"),
	I(expire_auto, 0, 1, "1", "run the daily expiry by itself (1) or only by pointsctl (0)"),
	I(unsafe_no_durability, 0, 1, "0", "run against fsync=off or synchronous_commit=off (baseline benchmarks only)"),
};
const size_t conf_keys_count = sizeof(conf_keys) / sizeof(conf_keys[0]);

void
conf_defaults(struct conf *c)
{
	char err[128];

	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < conf_keys_count; i++)
		(void)conf_set(c, conf_keys[i].name, conf_keys[i].def, err, sizeof(err));
}

static int
conf_parse_int(const char *v, long long *out)
{
	char *end = NULL;

	if (*v == '\0' || !(isdigit((unsigned char)*v) || *v == '-'))
		return C_ERR;
	errno = 0;
	*out = strtoll(v, &end, 10);
	if (errno != 0 || *end != '\0')
		return C_ERR;
	return C_OK;
}

int
conf_set(struct conf *c, const char *key, const char *value, char *err, size_t errcap)
{
	for (size_t i = 0; i < conf_keys_count; i++) {
		const struct conf_key *k = &conf_keys[i];
		long long n;

		if (strcmp(k->name, key) != 0)
			continue;
		if (k->is_string) {
			if (strlen(value) >= k->size) {
				snprintf(err, errcap, "%s: value too long (max %zu bytes)", key, k->size - 1);
				return C_ERR;
			}
			memcpy((char *)c + k->offset, value, strlen(value) + 1);
			return C_OK;
		}
		if (conf_parse_int(value, &n) != C_OK) {
			snprintf(err, errcap, "%s: not an integer: %.40s", key, value);
			return C_ERR;
		}
		if (n < k->min || n > k->max) {
			snprintf(err, errcap, "%s: %lld out of range %lld..%lld", key, n, k->min, k->max);
			return C_ERR;
		}
		*(long long *)((char *)c + k->offset) = n;
		return C_OK;
	}
	snprintf(err, errcap, "unknown key: %.60s", key);
	return C_ERR;
}

static char *
conf_trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

int
conf_parse_text(struct conf *c, const char *text, char *err, size_t errcap)
{
	char line[2048];
	const char *p = text;
	int lineno = 0;

	while (*p != '\0') {
		const char *nl = strchr(p, '\n');
		size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
		char *l, *eq, e2[256];

		lineno++;
		if (len >= sizeof(line)) {
			snprintf(err, errcap, "line %d: too long", lineno);
			return C_ERR;
		}
		memcpy(line, p, len);
		line[len] = '\0';
		p += len + (nl != NULL ? 1 : 0);
		l = conf_trim(line);
		if (*l == '\0' || *l == '#')
			continue;
		eq = strchr(l, '=');
		if (eq == NULL) {
			snprintf(err, errcap, "line %d: expected key = value", lineno);
			return C_ERR;
		}
		*eq = '\0';
		if (conf_set(c, conf_trim(l), conf_trim(eq + 1), e2, sizeof(e2)) != C_OK) {
			snprintf(err, errcap, "line %d: %s", lineno, e2);
			return C_ERR;
		}
	}
	return C_OK;
}

int
conf_load_file(struct conf *c, const char *path, char *err, size_t errcap)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	long n;
	int rc = C_ERR;

	if (f == NULL) {
		snprintf(err, errcap, "cannot open %s", path);
		return C_ERR;
	}
	n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
	if (n < 0 || n > 1 << 20 || fseek(f, 0, SEEK_SET) != 0) {
		snprintf(err, errcap, "cannot read %s", path);
		goto out;
	}
	buf = malloc((size_t)n + 1);
	if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		snprintf(err, errcap, "cannot read %s", path);
		goto out;
	}
	buf[n] = '\0';
	rc = conf_parse_text(c, buf, err, errcap);
out:
	free(buf);
	fclose(f);
	return rc;
}
