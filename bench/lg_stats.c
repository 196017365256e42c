/* lg_stats.c - loadgen's counters, latencies, error codes, the JSON summary
 * and the acknowledged-id log (one write(2) per acknowledged message, so a
 * kill -9 of the server leaves every acknowledged message in the file).
 * Never touches the network. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "loadgen.h"

void
lg_stats_latency(struct lg_stats *s, long long us)
{
	if (s->nlat == s->caplat) {
		size_t cap = s->caplat == 0 ? 65536 : s->caplat * 2;
		uint32_t *n = realloc(s->lat_us, cap * sizeof(*n));

		if (n == NULL)
			return;
		s->lat_us = n;
		s->caplat = cap;
	}
	s->lat_us[s->nlat++] = us < 0 ? 0 : us > (long long)UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static void
lg_stats_code_add(struct lg_stats *s, const char *code, long long n)
{
	int i;

	for (i = 0; i < LG_MAX_CODES && s->code_name[i][0] != '\0'; i++)
		if (strcmp(s->code_name[i], code) == 0)
			break;
	if (i == LG_MAX_CODES)
		i = LG_MAX_CODES - 1;     /* the last slot collects the overflow */
	if (s->code_name[i][0] == '\0')
		snprintf(s->code_name[i], sizeof(s->code_name[i]), "%s", code);
	s->code_count[i] += n;
}

void
lg_stats_code(struct lg_stats *s, const char *code)
{
	lg_stats_code_add(s, code, 1);
}

void
lg_stats_merge(struct lg_stats *into, const struct lg_stats *from)
{
	into->requests += from->requests;
	into->messages += from->messages;
	into->ok_messages += from->ok_messages;
	into->posted += from->posted;
	into->replayed += from->replayed;
	into->transport_errors += from->transport_errors;
	into->connect_failures += from->connect_failures;
	into->handshakes += from->handshakes;
	into->status_2xx += from->status_2xx;
	into->status_4xx += from->status_4xx;
	into->status_5xx += from->status_5xx;
	for (int i = 0; i < LG_MAX_CODES && from->code_name[i][0] != '\0'; i++)
		lg_stats_code_add(into, from->code_name[i], from->code_count[i]);
	for (size_t i = 0; i < from->nlat; i++)
		lg_stats_latency(into, from->lat_us[i]);
}

void
lg_stats_free(struct lg_stats *s)
{
	free(s->lat_us);
	s->lat_us = NULL;
	s->nlat = s->caplat = 0;
}

static int
lg_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* the latency at quantile q_per_mille/1000 (nearest rank), in ms */
static double
lg_quantile_ms(const struct lg_stats *s, int q_per_10k)
{
	size_t rank;

	if (s->nlat == 0)
		return 0;
	rank = (s->nlat * (size_t)q_per_10k + 9999) / 10000;
	if (rank < 1)
		rank = 1;
	return s->lat_us[rank - 1] / 1000.0;
}

static double
lg_per_s(long long n, long long us)
{
	return us > 0 ? (double)n * 1e6 / (double)us : 0;
}

/* one JSON line on stdout; latencies are sorted in place */
void
lg_stats_print(const struct lg_stats *cs, long long elapsed_us, int exhausted)
{
	struct lg_stats *s = (struct lg_stats *)cs;
	static const char *modes[] = { "load", "handshakes", "idle", "resend" };

	qsort(s->lat_us, s->nlat, sizeof(*s->lat_us), lg_cmp_u32);
	printf("{\"label\":\"%s\",\"mode\":\"%s\",\"endpoint\":\"%s\",\"connections\":%d,"
	    "\"partners\":%d,\"threads\":%d,\"batch_lines\":%d,\"rate_target\":%lld,"
	    "\"elapsed_s\":%.3f,\"requests\":%lld,\"messages\":%lld,\"ok_messages\":%lld,"
	    "\"posted\":%lld,\"replayed\":%lld,\"requests_per_s\":%.1f,\"messages_per_s\":%.1f,"
	    "\"ok_messages_per_s\":%.1f,\"handshakes\":%lld,\"handshakes_per_s\":%.1f,",
	    lg.label, modes[lg.mode], lg.batch_lines > 0 ? "batches" : "messages",
	    lg.connections, lg.npartners, lg.threads, lg.batch_lines, lg.rate,
	    elapsed_us / 1e6, s->requests, s->messages, s->ok_messages, s->posted, s->replayed,
	    lg_per_s(s->requests, elapsed_us), lg_per_s(s->messages, elapsed_us),
	    lg_per_s(s->ok_messages, elapsed_us), s->handshakes,
	    lg_per_s(s->handshakes, elapsed_us));
	printf("\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f},",
	    lg_quantile_ms(s, 5000), lg_quantile_ms(s, 9000), lg_quantile_ms(s, 9900),
	    lg_quantile_ms(s, 9990), lg_quantile_ms(s, 10000));
	printf("\"status\":{\"2xx\":%lld,\"4xx\":%lld,\"5xx\":%lld},\"codes\":{",
	    s->status_2xx, s->status_4xx, s->status_5xx);
	for (int i = 0; i < LG_MAX_CODES && s->code_name[i][0] != '\0'; i++)
		printf("%s\"%s\":%lld", i > 0 ? "," : "", s->code_name[i], s->code_count[i]);
	printf("},\"transport_errors\":%lld,\"connect_failures\":%lld,\"exhausted\":%s,"
	    "\"run_id\":\"%s\"}\n", s->transport_errors, s->connect_failures,
	    exhausted ? "true" : "false", lg.run_id);
	fflush(stdout);
}

/* partner, id, entry, sha256 of the JWS: one line, one write(2) */
void
lg_ack_write(const struct lg_msg *m, long long entry)
{
	char line[256];
	int n;

	if (lg.ack_fd < 0)
		return;
	n = snprintf(line, sizeof(line), "%s %s %lld %s\n", lg.partners[m->partner].id,
	    m->id, entry, m->sha256);
	if (n > 0 && (size_t)n < sizeof(line) && write(lg.ack_fd, line, (size_t)n) != n)
		fprintf(stderr, "loadgen: ack log write failed\n");
}
