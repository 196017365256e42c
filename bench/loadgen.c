/* loadgen.c - bench/loadgen: options, the pre-signing step, the threads and
 * the JSON summary. A load generator for pointsd over mutual TLS: closed or
 * open loop, single messages or batches, handshakes, idle connections,
 * resending saved messages. Never sends anywhere but --host (loopback in
 * the benchmarks), and never runs longer than --duration plus --drain-ms. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "errors.h"
#include "loadgen.h"

struct lg_opts lg;
pthread_barrier_t lg_barrier;
extern atomic_int lg_established, lg_failed;

long long
lg_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
lg_usage(FILE *f)
{
	fprintf(f,
	    "usage: loadgen --port N --ca FILE (--certs DIR --partners a,b | --partner ID:CERT:KEY:SIGNKEY:KID ...)\n"
	    "               [mode and load options]\n"
	    "  --host ADDR            server address (default 127.0.0.1)\n"
	    "  --connections N        keep-alive connections, spread over the partners (default 4)\n"
	    "  --threads N            event loops (default 1)\n"
	    "  --batch L              POST /v1/batches with L lines per request (default: POST /v1/messages)\n"
	    "  --rate R               open loop at R requests/s (latency from the scheduled time)\n"
	    "  --duration S           timed part in seconds (default 10; --resend: 600); --duration-ms MS\n"
	    "  --count N              stop after N messages\n"
	    "  --presign N            messages signed before the timed part (default: count, or\n"
	    "                         rate x duration x lines, or 10000/s x duration)\n"
	    "  --members K            member numbers B0..B(K-1) (default 10000)\n"
	    "  --mix I,R              percent issues, redeems; the rest reverses (default 70,20)\n"
	    "  --sign-threads N       threads for pre-signing (default: online cores)\n"
	    "  --connect-parallel N   handshakes in progress at once before the timed part (default 64)\n"
	    "  --drain-ms MS          wait for answers after the timed part (default 5000)\n"
	    "  --ack-log FILE         append 'partner id entry sha256' per acknowledged message\n"
	    "  --save-messages FILE   write the pre-signed messages as 'partner JWS' lines\n"
	    "  --handshakes           connect, handshake, GET /v1/keys, close, repeat\n"
	    "  --idle                 open the connections and hold them for the duration\n"
	    "  --resend FILE          send each 'partner JWS' line once; one JSON line per message\n"
	    "  --label TEXT           copied into the summary\n"
	    "  --run-id ID            prefix of message ids (default: from time and pid)\n"
	    "  --quickack             TCP_QUICKACK after every read (to diagnose Nagle/delayed-ACK stalls)\n");
}

static int
lg_num(const char *s, long long min, long long max, long long *out)
{
	char *end = NULL;

	errno = 0;
	*out = strtoll(s, &end, 10);
	return (errno == 0 && end != s && *end == '\0' && *out >= min && *out <= max) ? C_OK : C_ERR;
}

/* ID:CERT:KEY:SIGNKEY:KID, or a partner id under --certs DIR */
static int
lg_add_partner(const char *spec, const char *certs_dir)
{
	struct lg_partner *p;
	char kidfile[600];
	FILE *f;

	if (lg.npartners == LG_MAX_PARTNERS)
		return C_ERR;
	p = &lg.partners[lg.npartners];
	if (certs_dir == NULL) {
		if (sscanf(spec, "%64[^:]:%511[^:]:%511[^:]:%511[^:]:%128s", p->id, p->cert, p->key,
		    p->signkey, p->kid) != 5)
			return C_ERR;
		lg.npartners++;
		return C_OK;
	}
	snprintf(p->id, sizeof(p->id), "%s", spec);
	snprintf(p->cert, sizeof(p->cert), "%s/partners/%s/client.crt", certs_dir, spec);
	snprintf(p->key, sizeof(p->key), "%s/partners/%s/client.key", certs_dir, spec);
	snprintf(p->signkey, sizeof(p->signkey), "%s/partners/%s/signing.key", certs_dir, spec);
	snprintf(kidfile, sizeof(kidfile), "%s/partners/%s/signing.kid", certs_dir, spec);
	f = fopen(kidfile, "r");
	if (f == NULL || fscanf(f, "%128s", p->kid) != 1) {
		if (f != NULL)
			fclose(f);
		return C_ERR;
	}
	fclose(f);
	lg.npartners++;
	return C_OK;
}

static int
lg_add_partner_list(const char *list, const char *certs_dir)
{
	char buf[1024], *save = NULL, *tok;

	snprintf(buf, sizeof(buf), "%s", list);
	for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save))
		if (lg_add_partner(tok, certs_dir) != C_OK) {
			fprintf(stderr, "loadgen: partner %s: no certificates or kid under %s\n",
			    tok, certs_dir);
			return C_ERR;
		}
	return C_OK;
}

static void
lg_defaults(void)
{
	memset(&lg, 0, sizeof(lg));
	snprintf(lg.host, sizeof(lg.host), "127.0.0.1");
	lg.connections = 4;
	lg.threads = 1;
	lg.sign_threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
	lg.duration_ms = 10000;
	lg.members = 10000;
	lg.pct_issue = 70;
	lg.pct_redeem = 20;
	lg.connect_parallel = 64;
	lg.drain_ms = 5000;
	lg.ack_fd = -1;
	snprintf(lg.run_id, sizeof(lg.run_id), "r%llx%x", (long long)time(NULL),
	    (unsigned)getpid() & 0xffff);
}

enum { O_HOST = 256, O_PORT, O_CA, O_CERTS, O_PARTNERS, O_PARTNER, O_CONNS, O_THREADS,
	O_BATCH, O_RATE, O_DUR, O_DUR_MS, O_COUNT, O_PRESIGN, O_MEMBERS, O_MIX, O_SIGNT,
	O_CPAR, O_DRAIN, O_ACK, O_SAVE, O_HS, O_IDLE, O_RESEND, O_LABEL, O_RUNID, O_QUICKACK, O_HELP };

static const struct option lg_longopts[] = {
	{ "host", 1, 0, O_HOST }, { "port", 1, 0, O_PORT }, { "ca", 1, 0, O_CA },
	{ "certs", 1, 0, O_CERTS }, { "partners", 1, 0, O_PARTNERS },
	{ "partner", 1, 0, O_PARTNER }, { "connections", 1, 0, O_CONNS },
	{ "threads", 1, 0, O_THREADS }, { "batch", 1, 0, O_BATCH }, { "rate", 1, 0, O_RATE },
	{ "duration", 1, 0, O_DUR }, { "duration-ms", 1, 0, O_DUR_MS },
	{ "count", 1, 0, O_COUNT }, { "presign", 1, 0, O_PRESIGN },
	{ "members", 1, 0, O_MEMBERS }, { "mix", 1, 0, O_MIX },
	{ "sign-threads", 1, 0, O_SIGNT }, { "connect-parallel", 1, 0, O_CPAR },
	{ "drain-ms", 1, 0, O_DRAIN }, { "ack-log", 1, 0, O_ACK },
	{ "save-messages", 1, 0, O_SAVE }, { "handshakes", 0, 0, O_HS },
	{ "idle", 0, 0, O_IDLE }, { "resend", 1, 0, O_RESEND }, { "label", 1, 0, O_LABEL },
	{ "run-id", 1, 0, O_RUNID }, { "quickack", 0, 0, O_QUICKACK }, { "help", 0, 0, O_HELP }, { 0, 0, 0, 0 },
};

static int lg_duration_set;

static int
lg_opt_num(int o, const char *v)
{
	long long n;
	int ok;

	switch (o) {
	case O_PORT: ok = lg_num(v, 1, 65535, &n) == C_OK; lg.port = (int)n; break;
	case O_CONNS: ok = lg_num(v, 1, LG_MAX_CONNECTIONS, &n) == C_OK; lg.connections = (int)n; break;
	case O_THREADS: ok = lg_num(v, 1, LG_MAX_THREADS, &n) == C_OK; lg.threads = (int)n; break;
	case O_BATCH: ok = lg_num(v, 1, LG_MAX_BATCH_LINES, &n) == C_OK; lg.batch_lines = (int)n; break;
	case O_RATE: ok = lg_num(v, 1, 10000000, &lg.rate) == C_OK; break;
	case O_DUR: ok = lg_num(v, 1, 3600, &n) == C_OK; lg.duration_ms = n * 1000; lg_duration_set = 1; break;
	case O_DUR_MS: ok = lg_num(v, 1, 3600000, &lg.duration_ms) == C_OK; lg_duration_set = 1; break;
	case O_COUNT: ok = lg_num(v, 1, 100000000, &lg.count) == C_OK; break;
	case O_PRESIGN: ok = lg_num(v, 1, 100000000, &lg.presign) == C_OK; break;
	case O_MEMBERS: ok = lg_num(v, 1, 100000000, &n) == C_OK; lg.members = (int)n; break;
	case O_SIGNT: ok = lg_num(v, 1, LG_MAX_THREADS, &n) == C_OK; lg.sign_threads = (int)n; break;
	case O_CPAR: ok = lg_num(v, 1, LG_MAX_CONNECTIONS, &n) == C_OK; lg.connect_parallel = (int)n; break;
	case O_DRAIN: ok = lg_num(v, 0, 600000, &lg.drain_ms) == C_OK; break;
	case O_MIX:
		ok = sscanf(v, "%d,%d", &lg.pct_issue, &lg.pct_redeem) == 2 && lg.pct_issue >= 1 &&
		    lg.pct_redeem >= 0 && lg.pct_issue + lg.pct_redeem <= 100;
		break;
	default: ok = 0;
	}
	return ok ? C_OK : C_ERR;
}

static int
lg_parse(int argc, char **argv)
{
	const char *certs = NULL, *plist = NULL;
	int o;

	while ((o = getopt_long(argc, argv, "h", lg_longopts, NULL)) != -1) {
		switch (o) {
		case O_HOST: snprintf(lg.host, sizeof(lg.host), "%s", optarg); break;
		case O_CA: snprintf(lg.cafile, sizeof(lg.cafile), "%s", optarg); break;
		case O_CERTS: certs = optarg; break;
		case O_PARTNERS: plist = optarg; break;
		case O_PARTNER:
			if (lg_add_partner(optarg, NULL) != C_OK)
				goto bad;
			break;
		case O_ACK: snprintf(lg.ack_log, sizeof(lg.ack_log), "%s", optarg); break;
		case O_SAVE: snprintf(lg.save_messages, sizeof(lg.save_messages), "%s", optarg); break;
		case O_RESEND: snprintf(lg.resend, sizeof(lg.resend), "%s", optarg); lg.mode = LG_RESEND; break;
		case O_LABEL: snprintf(lg.label, sizeof(lg.label), "%s", optarg); break;
		case O_RUNID: snprintf(lg.run_id, sizeof(lg.run_id), "%s", optarg); break;
		case O_HS: lg.mode = LG_HANDSHAKES; break;
		case O_IDLE: lg.mode = LG_IDLE; break;
		case O_QUICKACK: lg.quickack = 1; break;
		case 'h': case O_HELP: lg_usage(stdout); exit(0);
		default:
			if (o < O_HOST || lg_opt_num(o, optarg) != C_OK)
				goto bad;
		}
	}
	if (certs != NULL && lg.cafile[0] == '\0')
		snprintf(lg.cafile, sizeof(lg.cafile), "%s/ca.crt", certs);
	if (certs != NULL && lg_add_partner_list(plist != NULL ? plist : "acme,globex", certs) != C_OK)
		return C_ERR;
	if (optind != argc || lg.port == 0 || lg.cafile[0] == '\0' || lg.npartners == 0)
		goto bad;
	return C_OK;
bad:
	lg_usage(stderr);
	return C_ERR;
}

static long long
lg_presign_count(void)
{
	long long lines = lg.batch_lines > 0 ? lg.batch_lines : 1;

	if (lg.presign > 0)
		return lg.presign;
	if (lg.count > 0)
		return lg.count;
	if (lg.rate > 0)
		return lg.rate * lines * lg.duration_ms / 1000 * 21 / 20 + lines * lg.connections;
	return 10 * lg.duration_ms + lines * lg.connections;
}

/* pools, connections and rates split over the threads */
static struct lg_thread *
lg_threads_plan(struct lg_pool *pools)
{
	struct lg_thread *ths = calloc((size_t)lg.threads, sizeof(*ths));

	if (ths == NULL)
		return NULL;
	for (int t = 0; t < lg.threads; t++) {
		struct lg_thread *th = &ths[t];

		th->index = t;
		th->first_conn = (int)((long long)t * lg.connections / lg.threads);
		th->nconns = (int)((long long)(t + 1) * lg.connections / lg.threads) - th->first_conn;
		th->pools = &pools[t * lg.npartners];
		th->rate = lg.rate / lg.threads + (t == 0 ? lg.rate % lg.threads : 0);
		th->count = lg.count > 0 ? lg.count / lg.threads + (t == 0 ? lg.count % lg.threads : 0) : 0;
		th->resend_out = lg.mode == LG_RESEND ? stdout : NULL;
	}
	return ths;
}

static int
lg_prepare_pools(struct lg_pool *pools)
{
	char err[256];
	long long t0 = lg_now_us(), n;

	if (lg.mode == LG_RESEND) {
		if (lg_resend_read(lg.resend, pools, err, sizeof(err)) != C_OK)
			goto fail;
		return C_OK;
	}
	if (lg.mode != LG_LOAD)
		return C_OK;
	n = lg_presign_count();
	if (lg_messages_sign(pools, lg.threads, n, err, sizeof(err)) != C_OK)
		goto fail;
	fprintf(stderr, "loadgen: signed %lld messages in %.2f s (run id %s)\n", n,
	    (lg_now_us() - t0) / 1e6, lg.run_id);
	if (lg.save_messages[0] != '\0' &&
	    lg_messages_save(pools, lg.threads * lg.npartners, lg.save_messages) != C_OK) {
		snprintf(err, sizeof(err), "cannot write %.200s", lg.save_messages);
		goto fail;
	}
	return C_OK;
fail:
	fprintf(stderr, "loadgen: %s\n", err);
	return C_ERR;
}

static void
lg_run(struct lg_thread *ths)
{
	struct lg_stats total;
	long long start = 0, end = 0;
	int exhausted = 0;

	pthread_barrier_wait(&lg_barrier);
	if (lg.mode != LG_HANDSHAKES)
		fprintf(stderr, "{\"event\":\"ready\",\"established\":%d,\"failed\":%d}\n",
		    atomic_load(&lg_established), atomic_load(&lg_failed));
	pthread_barrier_wait(&lg_barrier);
	memset(&total, 0, sizeof(total));
	for (int t = 0; t < lg.threads; t++) {
		pthread_join(ths[t].tid, NULL);
		if (start == 0 || ths[t].start_us < start)
			start = ths[t].start_us;
		if (ths[t].end_us > end)
			end = ths[t].end_us;
		exhausted |= ths[t].exhausted;
		lg_stats_merge(&total, &ths[t].stats);
		lg_stats_free(&ths[t].stats);
	}
	if (lg.mode == LG_IDLE)
		total.handshakes = atomic_load(&lg_established);
	lg_stats_print(&total, end - start, exhausted);
	lg_stats_free(&total);
}

int
main(int argc, char **argv)
{
	struct lg_pool *pools = NULL;
	struct lg_thread *ths = NULL;
	char err[256];
	int rc = 2;

	lg_defaults();
	if (lg_parse(argc, argv) != C_OK)
		return 2;
	if (lg.mode == LG_RESEND) {
		lg.threads = 1;
		lg.connections = lg.npartners;
		lg.batch_lines = 0;
		lg.rate = 0;
		if (!lg_duration_set)
			lg.duration_ms = 600000;   /* the whole file, within 10 minutes */
	}
	if (lg_partners_load(err, sizeof(err)) != C_OK) {
		fprintf(stderr, "loadgen: %s\n", err);
		return 2;
	}
	pools = calloc((size_t)(lg.threads * lg.npartners), sizeof(*pools));
	if (pools == NULL || lg_prepare_pools(pools) != C_OK)
		goto out;
	if (lg.ack_log[0] != '\0') {
		lg.ack_fd = open(lg.ack_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (lg.ack_fd < 0) {
			fprintf(stderr, "loadgen: cannot open %s\n", lg.ack_log);
			goto out;
		}
	}
	ths = lg_threads_plan(pools);
	if (ths == NULL || pthread_barrier_init(&lg_barrier, NULL, (unsigned)lg.threads + 1) != 0)
		goto out;
	for (int t = 0; t < lg.threads; t++)
		if (pthread_create(&ths[t].tid, NULL, lg_thread_main, &ths[t]) != 0)
			goto out;
	lg_run(ths);
	rc = 0;
out:
	if (lg.ack_fd >= 0)
		close(lg.ack_fd);
	free(ths);
	if (pools != NULL)
		lg_pools_free(pools, lg.threads * lg.npartners);
	return rc;
}
