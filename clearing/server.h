/* server.h - the shared state of pointsd: configuration, worker loops, the
 * database threads and the jobs that travel between them.
 * A job is created by a worker, filled by a database thread, and answered
 * and freed by the same worker: ownership moves with the job, never shared. */
#ifndef PTS_SERVER_H
#define PTS_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/ssl.h>

#include "clearing/message.h"
#include "conf.h"
#include "errors.h"

struct worker;

/* one message on its way to the ledger */
struct post_item {
	char *jws;               /* exact bytes, NUL-terminated copy */
	size_t jws_len;
	char sha256[65];
	char partner[65];        /* from the client certificate */
	char id[65];             /* "" when the payload has no usable id */
	char kid[129];
	enum err pre_error;      /* ERR_OK when verified and valid */
	const char *detail;
	int terminal;            /* answered without the database (malformed etc.) */
	struct message msg;      /* valid when pre_error == ERR_OK */
	/* results */
	enum err result;
	int replayed;
	long long entry, balance;
	char accepted_at[40];
	char period[24];
	char *receipt;           /* malloc'd */
};

enum job_kind { JOB_POST, JOB_BATCH, JOB_READ_MESSAGE, JOB_READ_MEMBER,
	JOB_READ_SETTLEMENTS, JOB_READ_SETTLEMENT };

struct job {
	enum job_kind kind;
	struct worker *owner;
	struct evhttp_request *req;
	struct post_item *items;
	size_t nitems;
	char arg_partner[65];
	char arg_key[65];
	char *read_json;         /* reads: result JSON, NULL = not found */
	int db_failed;           /* outcome unknown: 503 */
	long long enqueued_us;
	size_t body_bytes;       /* counted against body_buffer_max_bytes */
	struct job *next;
};

struct job_queue {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *head, *tail;
	size_t nmessages;
	size_t max_messages;
	int stopping;
	int wake_fd;                /* eventfd: a push while the consumer polls */
	int sleeping;               /* the consumer polls wake_fd (jobq_sleep_begin) */
};

struct worker {
	int index;
	pthread_t thread;
	struct event_base *base;
	struct evhttp *http;
	int listen_fd;
	struct evhttp_bound_socket *bound;
	struct event *done_ev;
	pthread_mutex_t done_mu;
	struct job *done_head;
};

struct server {
	struct conf conf;
	struct worker *workers;
	int nworkers;
	pthread_mutex_t ssl_mu;
	SSL_CTX *ssl_ctx;             /* guarded by ssl_mu */
	X509_CRL *crl;                /* guarded by ssl_mu; NULL: none configured */
	atomic_int crl_gen;           /* bumped at each reload */
	EVP_PKEY *receipt_key;
	char receipt_kid[44];
	struct job_queue writeq;
	struct job_queue readq;
	pthread_t writer_thread, reader_thread, control_thread;
	atomic_int stopping;
	atomic_int reload_requested;
	atomic_llong connections;
	atomic_llong body_bytes;
	atomic_int db_up;
	atomic_llong inflight;
};

/* facts about one TLS connection, kept in its SSL ex_data */
struct conn_info {
	int ident_ready;
	int revoked;             /* by the CRL of generation crl_gen */
	int crl_gen;
	int in_request;
	long long body_reserved;
	struct event *deadline_ev;
	struct bufferevent *bev;
	char cn[65];
	char fp[65];
};
extern int conn_ex_index;

extern struct server g_server;

long long now_us(void);

/* listener.c */
SSL_CTX *tls_ctx_build(const struct conf *c, char *err, size_t errcap);
int tls_ctx_reload(struct server *s, char *err, size_t errcap);
int listener_open(const char *addr_port, int reuseport, char *err, size_t errcap);
int worker_start(struct server *s, struct worker *w);
void worker_deliver(struct worker *w, struct job *j);

/* request.c */
void request_handle(struct evhttp_request *req, void *arg);
void request_finish(struct job *j);

/* post.c */
int jobq_push(struct job_queue *q, struct job *j);
void jobq_init(struct job_queue *q, size_t max_messages);
void jobq_stop(struct job_queue *q);
/* for a consumer that waits for a job and for other file descriptors in one
 * poll(): 0 if a job is queued (or the queue stops), else 1 and q->wake_fd
 * becomes readable at the next push, until jobq_sleep_end() */
int jobq_sleep_begin(struct job_queue *q);
/* messages queued (a batch counts its lines) */
size_t jobq_depth(struct job_queue *q);
void jobq_sleep_end(struct job_queue *q);
/* post.c: the writer's next group from q (wait: block and gather for
 * commit_window_us; else only what is queued) */
size_t writer_take_group(struct job_queue *q, struct job **group, size_t cap, int wait);
/* writer.c: arg is an array of WRITER_SLOTS struct dbconn */
#define WRITER_SLOTS 2
void *writer_main(void *arg);
void *reader_main(void *arg);
void *control_main(void *arg);
void job_free(struct job *j);

#endif
