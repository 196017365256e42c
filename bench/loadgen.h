/* loadgen.h - the shared state of bench/loadgen, the mTLS load generator:
 * options, partners, pre-signed message pools, per-thread statistics.
 * Only ever talks to the address given on the command line (loopback in
 * the benchmarks); every loop is bounded by a count and a deadline. */
#ifndef PTS_LOADGEN_H
#define PTS_LOADGEN_H

#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <openssl/ssl.h>
#include <openssl/evp.h>

#define LG_MAX_PARTNERS 16
#define LG_MAX_CODES 32
#define LG_MAX_THREADS 64
#define LG_MAX_CONNECTIONS 100000
#define LG_MAX_BATCH_LINES 10000

enum lg_mode { LG_LOAD, LG_HANDSHAKES, LG_IDLE, LG_RESEND };

struct lg_partner {
	char id[65];
	char cert[512], key[512], signkey[512], kid[129];
	SSL_CTX *ctx;
	EVP_PKEY *sign;
};

/* one pre-signed message */
struct lg_msg {
	char *jws;               /* malloc'd compact JWS */
	size_t len;
	char id[65];
	char sha256[65];
	int partner;             /* index into lg_opts.partners */
};

/* the messages of one (thread, partner), consumed in order */
struct lg_pool {
	struct lg_msg *msgs;
	size_t n, next;
};

struct lg_opts {
	enum lg_mode mode;
	char host[64];
	int port;
	char cafile[512];
	struct lg_partner partners[LG_MAX_PARTNERS];
	int npartners;
	int connections;
	int threads;
	int sign_threads;
	int batch_lines;          /* 0: POST /v1/messages, else /v1/batches */
	long long rate;           /* requests/s, open loop; 0 = closed loop */
	long long duration_ms;
	long long count;          /* messages to send; 0 = by duration only */
	long long presign;        /* messages to sign ahead; 0 = derived */
	int members;
	int pct_issue, pct_redeem; /* the rest are reverses */
	int connect_parallel;     /* handshakes in progress at once */
	long long drain_ms;
	char run_id[24];
	char ack_log[512];
	char save_messages[512];
	char resend[512];
	char label[128];
	int ack_fd;
	int quickack;             /* TCP_QUICKACK after every read (diagnosis) */
};

struct lg_stats {
	long long requests, messages, ok_messages, posted, replayed;
	long long transport_errors, connect_failures, handshakes;
	long long status_2xx, status_4xx, status_5xx;
	char code_name[LG_MAX_CODES][40];
	long long code_count[LG_MAX_CODES];
	uint32_t *lat_us;         /* one latency per request, micros */
	size_t nlat, caplat;
};

extern struct lg_opts lg;

long long lg_now_us(void);

/* lg_sign.c */
int lg_partners_load(char *err, size_t errcap);
/* fills pools[t * npartners + p]; total messages n */
int lg_messages_sign(struct lg_pool *pools, int nthreads, long long n, char *err, size_t errcap);
int lg_messages_save(const struct lg_pool *pools, int npools, const char *path);
int lg_resend_read(const char *path, struct lg_pool *pools, char *err, size_t errcap);
void lg_pools_free(struct lg_pool *pools, int npools);
void lg_sha256_hex(const char *p, size_t n, char out[65]);

/* lg_stats.c */
void lg_stats_latency(struct lg_stats *s, long long us);
void lg_stats_code(struct lg_stats *s, const char *code);
void lg_stats_merge(struct lg_stats *into, const struct lg_stats *from);
void lg_stats_free(struct lg_stats *s);
void lg_stats_print(const struct lg_stats *s, long long elapsed_us, int exhausted);
void lg_ack_write(const struct lg_msg *m, long long entry);

/* lg_conn.c */
struct lg_thread {
	int index;
	pthread_t tid;
	struct lg_pool *pools;    /* npartners pools of this thread */
	int first_conn, nconns;   /* global connection indexes */
	long long rate;           /* this thread's share */
	long long count;          /* this thread's message budget, 0 = none */
	long long start_us, end_us;
	int exhausted;
	struct lg_stats stats;
	FILE *resend_out;
};
void *lg_thread_main(void *arg);

#endif
