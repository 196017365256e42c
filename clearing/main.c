/* main.c - pointsd: configuration, start-up checks, threads, signals.
 * SIGTERM/SIGINT drain (stop accepting, finish in-flight requests, exit 0);
 * SIGHUP reloads certificates, CRL and registry and rotates ticket keys. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/thread.h>
#include <openssl/err.h>

#include "clearing/receipt.h"
#include "control.h"
#include "dbconn.h"
#include "log.h"
#include "server.h"

#define DRAIN_MAX_MS 30000

struct server g_server;
static struct dbconn writer_dc[WRITER_SLOTS] = { { .name = "writer-a" }, { .name = "writer-b" } };
static struct dbconn reader_dc = { .name = "reader" };
static struct dbconn control_dc = { .name = "control" };

long long
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: pointsd [-c FILE] [--KEY=VALUE ...] [--unsafe-no-durability]\n"
	    "  -c FILE      configuration file of `key = value` lines\n"
	    "  --KEY=VALUE  any configuration key (docs/operations.md); overrides the file\n"
	    "  --check      check the configuration and the database, then exit\n");
}

static int
parse_args(int argc, char **argv, struct conf *c, int *check_only)
{
	char err[256];
	const char *file = NULL;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			file = argv[++i];
	}
	conf_defaults(c);
	if (file != NULL && conf_load_file(c, file, err, sizeof(err)) != C_OK)
		goto bad;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		char key[64];
		const char *eq;

		if (strcmp(a, "-c") == 0) {
			i++;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			exit(0);
		} else if (strcmp(a, "--check") == 0) {
			*check_only = 1;
		} else if (strcmp(a, "--unsafe-no-durability") == 0) {
			c->unsafe_no_durability = 1;
		} else if (strncmp(a, "--", 2) == 0 && (eq = strchr(a, '=')) != NULL &&
		    (size_t)(eq - a - 2) < sizeof(key)) {
			memcpy(key, a + 2, (size_t)(eq - a - 2));
			key[eq - a - 2] = '\0';
			for (char *k = key; *k != '\0'; k++)
				if (*k == '-')
					*k = '_';
			if (conf_set(c, key, eq + 1, err, sizeof(err)) != C_OK)
				goto bad;
		} else {
			snprintf(err, sizeof(err), "unknown argument: %.60s", a);
			goto bad;
		}
	}
	return C_OK;
bad:
	fprintf(stderr, "pointsd: configuration: %s\n", err);
	return C_ERR;
}

static int
startup_database(struct server *s)
{
	PGconn *pg = dbconn_get(&control_dc);
	char err[512], e[600];

	if (pg == NULL) {
		fprintf(stderr, "pointsd: database unreachable: %s\n", s->conf.db);
		return C_ERR;
	}
	if (control_check_durability(pg, err, sizeof(err)) != C_OK) {
		fprintf(stderr, "pointsd: %s\n", err);
		return C_ERR;
	}
	if (s->conf.unsafe_no_durability)
		log_event(LOG_WARN, "unsafe_no_durability",
		    "\"detail\":%s", log_json_str(e, sizeof(e),
		    "acknowledged messages may be lost on a crash: benchmarks only"));
	if (control_publish_receipt_key(pg) != C_OK ||
	    control_reload_registry(pg) != C_OK) {
		fprintf(stderr, "pointsd: cannot load the registry or publish the receipt key\n");
		return C_ERR;
	}
	return C_OK;
}

static int
startup_workers(struct server *s)
{
	char err[256];
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	s->nworkers = s->conf.threads > 0 ? (int)s->conf.threads : (int)(ncpu > 0 ? ncpu : 1);
	s->workers = calloc((size_t)s->nworkers, sizeof(*s->workers));
	if (s->workers == NULL)
		return C_ERR;
	for (int i = 0; i < s->nworkers; i++) {
		s->workers[i].index = i;
		s->workers[i].listen_fd = listener_open(s->conf.listen, 1, err, sizeof(err));
		if (s->workers[i].listen_fd < 0) {
			fprintf(stderr, "pointsd: %s\n", err);
			return C_ERR;
		}
		if (worker_start(s, &s->workers[i]) != C_OK) {
			fprintf(stderr, "pointsd: cannot start worker %d\n", i);
			return C_ERR;
		}
	}
	return C_OK;
}

static void
stop_accepting_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd; (void)what;
	if (w->bound != NULL)
		evhttp_del_accept_socket(w->http, w->bound);
	w->bound = NULL;
}

static void
drain_and_exit(struct server *s)
{
	long long start = now_us();

	log_event(LOG_INFO, "draining", "\"inflight\":%lld", (long long)atomic_load(&s->inflight));
	atomic_store(&s->stopping, 1);
	for (int i = 0; i < s->nworkers; i++)
		event_base_once(s->workers[i].base, -1, EV_TIMEOUT, stop_accepting_cb,
		    &s->workers[i], NULL);
	while (atomic_load(&s->inflight) > 0 && now_us() - start < DRAIN_MAX_MS * 1000LL)
		usleep(5000);
	if (atomic_load(&s->inflight) > 0)
		log_event(LOG_WARN, "drain_incomplete", "\"inflight\":%lld,\"queued\":%zu",
		    (long long)atomic_load(&s->inflight), jobq_depth(&s->writeq));
	jobq_stop(&s->writeq);
	jobq_stop(&s->readq);
	pthread_join(s->writer_thread, NULL);
	pthread_join(s->reader_thread, NULL);
	/* let the loops flush the last replies before they stop */
	usleep(100000);
	for (int i = 0; i < s->nworkers; i++) {
		struct timeval tv = { 0, 200000 };
		event_base_loopexit(s->workers[i].base, &tv);
	}
	for (int i = 0; i < s->nworkers; i++)
		pthread_join(s->workers[i].thread, NULL);
	control_wake();
	pthread_join(s->control_thread, NULL);
	log_event(LOG_INFO, "stopped", "\"drain_ms\":%lld", (now_us() - start) / 1000);
}

int
main(int argc, char **argv)
{
	struct server *s = &g_server;
	char err[512];
	int check_only = 0, sig;
	sigset_t set;

	if (parse_args(argc, argv, &s->conf, &check_only) != C_OK)
		return 2;
	log_set_level(strcmp(s->conf.log_level, "debug") == 0 ? LOG_DEBUG :
	    strcmp(s->conf.log_level, "warn") == 0 ? LOG_WARN :
	    strcmp(s->conf.log_level, "error") == 0 ? LOG_ERROR : LOG_INFO);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	evthread_use_pthreads();
	pthread_mutex_init(&s->ssl_mu, NULL);
	s->receipt_key = receipt_key_load(s->conf.receipt_key);
	if (s->receipt_key == NULL || receipt_key_kid(s->receipt_key, s->receipt_kid) != C_OK) {
		fprintf(stderr, "pointsd: cannot load receipt_key %s\n", s->conf.receipt_key);
		return 1;
	}
	if (tls_ctx_reload(s, err, sizeof(err)) != C_OK) {
		fprintf(stderr, "pointsd: %s\n", err);
		return 1;
	}
	if (control_init() != C_OK || startup_database(s) != C_OK)
		return 1;
	if (check_only) {
		printf("pointsd: configuration and database ok\n");
		return 0;
	}
	control_prepare_period(&control_dc);
	jobq_init(&s->writeq, (size_t)s->conf.queue_max_messages);
	jobq_init(&s->readq, (size_t)s->conf.queue_max_messages);
	if (startup_workers(s) != C_OK ||
	    pthread_create(&s->writer_thread, NULL, writer_main, writer_dc) != 0 ||
	    pthread_create(&s->reader_thread, NULL, reader_main, &reader_dc) != 0 ||
	    pthread_create(&s->control_thread, NULL, control_main, &control_dc) != 0)
		return 1;
	log_event(LOG_INFO, "listening", "\"listen\":\"%s\",\"workers\":%d,\"receipt_kid\":\"%s\"",
	    s->conf.listen, s->nworkers, s->receipt_kid);
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			log_event(LOG_INFO, "sighup", NULL);
			atomic_store(&s->reload_requested, 1);
			control_wake();
		} else if (sig == SIGTERM || sig == SIGINT) {
			drain_and_exit(s);
			return 0;
		}
	}
}
