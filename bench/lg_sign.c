/* lg_sign.c - loadgen's partners (TLS contexts, signing keys) and the
 * messages it sends: the issue/redeem/reverse mix, signed before the timed
 * part; saving them and reading them back for --resend. Never sends. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "b64url.h"
#include "clearing/jws.h"
#include "errors.h"
#include "loadgen.h"

void
lg_sha256_hex(const char *p, size_t n, char out[65])
{
	unsigned char md[32];
	static const char hex[] = "0123456789abcdef";

	SHA256((const unsigned char *)p, n, md);
	for (int i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

static SSL_CTX *
lg_ctx_new(const struct lg_partner *p, char *err, size_t errcap)
{
	SSL_CTX *ctx;

	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL)
		goto fail;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* every connection a full handshake: no session cache, no tickets */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	if (SSL_CTX_use_certificate_chain_file(ctx, p->cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, p->key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1 ||
	    SSL_CTX_load_verify_locations(ctx, lg.cafile, NULL) != 1)
		goto fail;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	return ctx;
fail:
	snprintf(err, errcap, "partner %s: tls: %s", p->id,
	    ERR_error_string(ERR_get_error(), NULL));
	SSL_CTX_free(ctx);
	return NULL;
}

int
lg_partners_load(char *err, size_t errcap)
{
	for (int i = 0; i < lg.npartners; i++) {
		struct lg_partner *p = &lg.partners[i];
		FILE *f;

		p->ctx = lg_ctx_new(p, err, errcap);
		if (p->ctx == NULL)
			return C_ERR;
		if (p->signkey[0] == '\0')
			continue;
		f = fopen(p->signkey, "r");
		if (f == NULL) {
			snprintf(err, errcap, "partner %s: cannot open %s", p->id, p->signkey);
			return C_ERR;
		}
		ERR_clear_error();
		p->sign = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
		if (p->sign == NULL) {
			snprintf(err, errcap, "partner %s: bad signing key %s", p->id, p->signkey);
			return C_ERR;
		}
	}
	return C_OK;
}

static uint64_t
lg_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* what the generator remembers of one pool's earlier messages */
struct lg_gen {
	unsigned char *kind;     /* 'i' issue, 'd' redeem, 'r' reverse, 'x' reversed issue */
	unsigned *member;
	uint64_t rs;
	size_t gap;
};

/* the payload of message k of one pool; redeems and reverses pick an earlier
 * issue at least gap positions back (so it has likely been answered), and
 * an issue is reversed at most once */
static int
lg_payload(char *buf, size_t cap, struct lg_pool *pool, size_t k, int thread,
    const struct lg_partner *p, struct lg_gen *g)
{
	int roll = (int)(lg_rand(&g->rs) % 100);
	long long iat = (long long)time(NULL);
	const char *id = pool->msgs[k].id;

	snprintf(pool->msgs[k].id, sizeof(pool->msgs[k].id), "%s-%d-%zu", lg.run_id, thread, k);
	for (int tries = 0; roll >= lg.pct_issue && k > g->gap && tries < 4; tries++) {
		size_t o = (size_t)(lg_rand(&g->rs) % (k - g->gap));
		int pts = 1 + (int)(lg_rand(&g->rs) % 5);

		if (g->kind[o] != 'i')
			continue;
		g->member[k] = g->member[o];
		if (roll < lg.pct_issue + lg.pct_redeem) {
			g->kind[k] = 'd';
			return snprintf(buf, cap, "{\"v\":1,\"type\":\"redeem\",\"partner\":\"%s\","
			    "\"id\":\"%s\",\"member\":\"B%u\",\"points\":%d,\"iat\":%lld}",
			    p->id, id, g->member[k], pts, iat);
		}
		g->kind[o] = 'x';
		g->kind[k] = 'r';
		return snprintf(buf, cap, "{\"v\":1,\"type\":\"reverse\",\"partner\":\"%s\","
		    "\"id\":\"%s\",\"member\":\"B%u\",\"points\":%d,\"iat\":%lld,"
		    "\"reverses\":\"%s\"}", p->id, id, g->member[k], pts, iat,
		    pool->msgs[o].id);
	}
	g->kind[k] = 'i';
	g->member[k] = (unsigned)(lg_rand(&g->rs) % (uint64_t)lg.members);
	return snprintf(buf, cap, "{\"v\":1,\"type\":\"issue\",\"partner\":\"%s\",\"id\":\"%s\","
	    "\"member\":\"B%u\",\"points\":%d,\"iat\":%lld}", p->id, id, g->member[k],
	    100 + (int)(lg_rand(&g->rs) % 900), iat);
}

struct lg_sign_job {
	struct lg_pool *pools;
	int npools;
	int next;                /* guarded by mu */
	pthread_mutex_t mu;
	int failed;
	size_t gap;
};

static int
lg_pool_sign(struct lg_pool *pool, int pool_index, size_t gap)
{
	int thread = pool_index / lg.npartners;
	const struct lg_partner *p = &lg.partners[pool_index % lg.npartners];
	struct lg_gen g = { .gap = gap, .rs = 0x9e3779b97f4a7c15ULL * (uint64_t)(pool_index + 1) };
	char buf[1024];
	int rc = C_ERR;

	g.kind = calloc(pool->n + 1, 1);
	g.member = calloc(pool->n + 1, sizeof(*g.member));
	if (g.kind == NULL || g.member == NULL)
		goto out;
	for (size_t k = 0; k < pool->n; k++) {
		int n = lg_payload(buf, sizeof(buf), pool, k, thread, p, &g);
		struct lg_msg *m = &pool->msgs[k];

		if (n <= 0 || (size_t)n >= sizeof(buf))
			goto out;
		m->jws = jws_sign_compact(p->sign, p->kid, JWS_TYP_MESSAGE, buf, (size_t)n);
		if (m->jws == NULL)
			goto out;
		m->len = strlen(m->jws);
		m->partner = pool_index % lg.npartners;
		lg_sha256_hex(m->jws, m->len, m->sha256);
	}
	rc = C_OK;
out:
	free(g.kind);
	free(g.member);
	return rc;
}

static void *
lg_sign_main(void *arg)
{
	struct lg_sign_job *j = arg;

	for (;;) {
		int i;

		pthread_mutex_lock(&j->mu);
		i = j->next++;
		pthread_mutex_unlock(&j->mu);
		if (i >= j->npools)
			break;
		if (lg_pool_sign(&j->pools[i], i, j->gap) != C_OK)
			j->failed = 1;
	}
	return NULL;
}

/* message counts follow the connections: pool (t, p) gets n times its share
 * of the connections; signing runs on sign_threads threads */
int
lg_messages_sign(struct lg_pool *pools, int nthreads, long long n, char *err, size_t errcap)
{
	int npools = nthreads * lg.npartners, nst = lg.sign_threads;
	struct lg_sign_job job = { .pools = pools, .npools = npools };
	pthread_t tids[LG_MAX_THREADS];
	long long per_conn = (n + lg.connections - 1) / lg.connections;

	for (int i = 0; i < lg.connections; i++) {
		int t = (int)((long long)i * nthreads / lg.connections);
		pools[t * lg.npartners + i % lg.npartners].n += (size_t)per_conn;
	}
	for (int i = 0; i < npools; i++) {
		pools[i].msgs = calloc(pools[i].n + 1, sizeof(struct lg_msg));
		if (pools[i].msgs == NULL) {
			snprintf(err, errcap, "out of memory for %zu messages", pools[i].n);
			return C_ERR;
		}
	}
	/* a redeem or reverse refers to an issue sent a round of requests earlier */
	job.gap = (size_t)(lg.connections / npools + 1) * (size_t)(lg.batch_lines > 0 ? lg.batch_lines : 1);
	pthread_mutex_init(&job.mu, NULL);
	nst = nst < 1 ? 1 : nst > LG_MAX_THREADS ? LG_MAX_THREADS : nst;
	for (int i = 0; i < nst; i++)
		if (pthread_create(&tids[i], NULL, lg_sign_main, &job) != 0)
			nst = i;
	for (int i = 0; i < nst; i++)
		pthread_join(tids[i], NULL);
	pthread_mutex_destroy(&job.mu);
	if (job.failed || nst == 0) {
		snprintf(err, errcap, "signing failed (a partner without a usable signing key?)");
		return C_ERR;
	}
	return C_OK;
}

int
lg_messages_save(const struct lg_pool *pools, int npools, const char *path)
{
	FILE *f = fopen(path, "w");
	int rc = C_OK;

	if (f == NULL)
		return C_ERR;
	for (int i = 0; i < npools; i++)
		for (size_t k = 0; k < pools[i].n; k++)
			if (fprintf(f, "%s %s\n", lg.partners[pools[i].msgs[k].partner].id,
			    pools[i].msgs[k].jws) < 0)
				rc = C_ERR;
	if (fclose(f) != 0)
		rc = C_ERR;
	return rc;
}

/* the payload's id, or "" when it has none */
static void
lg_jws_id(const char *jws, size_t len, char out[65])
{
	const char *d1 = memchr(jws, '.', len), *d2;
	unsigned char buf[16384];
	size_t n;
	json_t *o;
	const char *id;

	out[0] = '\0';
	if (d1 == NULL)
		return;
	d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - jws));
	if (d2 == NULL || b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), buf, sizeof(buf), &n) != C_OK)
		return;
	o = json_loadb((const char *)buf, n, 0, NULL);
	id = o != NULL ? json_string_value(json_object_get(o, "id")) : NULL;
	if (id != NULL)
		snprintf(out, 65, "%s", id);
	json_decref(o);
}

/* FILE: one "partner JWS" per line, as --save-messages writes it; fills one
 * pool per partner, in file order */
int
lg_resend_read(const char *path, struct lg_pool *pools, char *err, size_t errcap)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0, lineno = 0;
	ssize_t n;
	int rc = C_ERR;

	if (f == NULL) {
		snprintf(err, errcap, "cannot open %s", path);
		return C_ERR;
	}
	while ((n = getline(&line, &cap, f)) > 0) {
		char *sp = memchr(line, ' ', (size_t)n);
		int p;
		struct lg_pool *pool;
		struct lg_msg *m;

		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0)
			continue;
		for (p = 0; sp != NULL && p < lg.npartners; p++)
			if ((size_t)(sp - line) == strlen(lg.partners[p].id) &&
			    memcmp(line, lg.partners[p].id, (size_t)(sp - line)) == 0)
				break;
		if (sp == NULL || p == lg.npartners) {
			snprintf(err, errcap, "%s:%zu: expected a known partner, a space, a JWS", path, lineno);
			goto out;
		}
		pool = &pools[p];
		m = realloc(pool->msgs, (pool->n + 1) * sizeof(*m));
		if (m == NULL)
			goto out;
		pool->msgs = m;
		m = &pool->msgs[pool->n++];
		memset(m, 0, sizeof(*m));
		m->jws = strdup(sp + 1);
		if (m->jws == NULL)
			goto out;
		m->len = strlen(m->jws);
		m->partner = p;
		lg_sha256_hex(m->jws, m->len, m->sha256);
		lg_jws_id(m->jws, m->len, m->id);
	}
	rc = C_OK;
out:
	free(line);
	fclose(f);
	return rc;
}

void
lg_pools_free(struct lg_pool *pools, int npools)
{
	for (int i = 0; i < npools; i++) {
		for (size_t k = 0; k < pools[i].n; k++)
			free(pools[i].msgs[k].jws);
		free(pools[i].msgs);
	}
	free(pools);
}
