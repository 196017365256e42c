/* post.c - the database side of pointsd: the bounded job queues, the writer
 * thread (group commit: many connections' messages, one transaction, one
 * COMMIT, then the replies), and the reader thread for partner reads.
 * A job is answered only after its transaction committed; when the outcome
 * is unknown (connection lost, timeout) the answer is 503. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "clearing/receipt.h"
#include "dbconn.h"
#include "ledger.h"
#include "pts_limits.h"
#include "log.h"
#include "pgarray.h"
#include "pts_assert.h"
#include "server.h"

void
jobq_init(struct job_queue *q, size_t max_messages)
{
	memset(q, 0, sizeof(*q));
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	q->max_messages = max_messages;
}

static size_t
job_weight(const struct job *j)
{
	return j->nitems > 0 ? j->nitems : 1;
}

int
jobq_push(struct job_queue *q, struct job *j)
{
	int rc = C_OK;

	pthread_mutex_lock(&q->mu);
	if (q->stopping || q->nmessages + job_weight(j) > q->max_messages) {
		rc = C_ERR;
	} else {
		j->next = NULL;
		if (q->tail != NULL)
			q->tail->next = j;
		else
			q->head = j;
		q->tail = j;
		q->nmessages += job_weight(j);
		pthread_cond_signal(&q->cv);
	}
	pthread_mutex_unlock(&q->mu);
	return rc;
}

void
jobq_stop(struct job_queue *q)
{
	pthread_mutex_lock(&q->mu);
	q->stopping = 1;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

static struct job *
jobq_pop_locked(struct job_queue *q)
{
	struct job *j = q->head;

	if (j != NULL) {
		q->head = j->next;
		if (q->head == NULL)
			q->tail = NULL;
		q->nmessages -= job_weight(j);
		j->next = NULL;
	}
	return j;
}

void
job_free(struct job *j)
{
	if (j == NULL)
		return;
	for (size_t i = 0; i < j->nitems; i++) {
		free(j->items[i].jws);
		free(j->items[i].receipt);
	}
	free(j->items);
	free(j->read_json);
	free(j);
}

/* take the next group: one batch job alone, or single messages up to
 * commit_max_messages, waiting at most commit_window_us after the first;
 * with wait 0 (a group is committing meanwhile) only what is queued */
static size_t
writer_take_group(struct job_queue *q, struct job **group, size_t cap, int wait)
{
	size_t n = 0, nmsg = 0;
	struct timespec deadline;
	long long window_us = wait ? g_server.conf.commit_window_us : 0;

	pthread_mutex_lock(&q->mu);
	while (wait && q->head == NULL && !q->stopping)
		pthread_cond_wait(&q->cv, &q->mu);
	if (q->head == NULL)
		goto out;
	if (q->head->kind == JOB_BATCH) {
		group[n++] = jobq_pop_locked(q);
		goto out;
	}
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_nsec += (window_us % 1000000) * 1000;
	deadline.tv_sec += window_us / 1000000 + deadline.tv_nsec / 1000000000;
	deadline.tv_nsec %= 1000000000;
	for (;;) {
		while (q->head != NULL && q->head->kind == JOB_POST && n < cap &&
		    nmsg < (size_t)g_server.conf.commit_max_messages) {
			group[n++] = jobq_pop_locked(q);
			nmsg++;
		}
		if (nmsg >= (size_t)g_server.conf.commit_max_messages || n == cap ||
		    (q->head != NULL && q->head->kind != JOB_POST) || q->stopping ||
		    window_us == 0)
			break;
		if (pthread_cond_timedwait(&q->cv, &q->mu, &deadline) != 0)
			break;
	}
	/* take what arrived while we waited, up to the bound */
	while (q->head != NULL && q->head->kind == JOB_POST && n < cap &&
	    nmsg < (size_t)g_server.conf.commit_max_messages) {
		group[n++] = jobq_pop_locked(q);
		nmsg++;
	}
out:
	pthread_mutex_unlock(&q->mu);
	return n;
}

static void
writer_deliver(struct job **group, size_t n, int failed)
{
	for (size_t i = 0; i < n; i++) {
		group[i]->db_failed = failed;
		worker_deliver(group[i]->owner, group[i]);
	}
}

/* one group through the writer: its jobs and its transaction */
struct writer_slot {
	struct job **group;
	size_t n;
	struct ledger_group lg;
	int committing;           /* COMMIT sent, outcome not yet read */
};

/* a group that failed as a whole: its jobs again one by one, so that one bad
 * message cannot fail the others (a lone job's failure is its answer) */
static void
writer_fail(struct writer_slot *w, struct dbconn *dc)
{
	ledger_group_free(&w->lg);
	if (w->n == 1) {
		writer_deliver(w->group, 1, 1);
		return;
	}
	for (size_t i = 0; i < w->n; i++)
		writer_deliver(&w->group[i], 1, ledger_post_group(dc, &w->group[i], 1) != C_OK);
}

/* read the COMMIT of a slot's group and answer its jobs */
static void
writer_finish(struct writer_slot *w)
{
	char sqlstate[6];

	if (!w->committing)
		return;
	w->committing = 0;
	if (ledger_group_commit(&w->lg, sqlstate) != C_OK) {
		writer_fail(w, w->lg.dc);
		return;
	}
	ledger_group_free(&w->lg);
	writer_deliver(w->group, w->n, 0);
}

/* posts one group on slot w's connection up to its COMMIT (sent, not
 * read); the other slot's COMMIT, if any, is read while post_group() runs.
 * Retries a deadlock or serialization failure; C_ERR if the group failed. */
static int
writer_post(struct writer_slot *w, struct writer_slot *other)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		char sqlstate[6] = "";
		int rc = ledger_group_send(&w->lg, sqlstate);

		/* the other group holds its locks until its COMMIT: this group
		 * waits for them in the database, not here */
		writer_finish(other);
		if (rc == C_OK)
			rc = ledger_group_post(&w->lg, sqlstate);
		if (rc == C_OK) {
			w->committing = 1;
			return C_OK;
		}
		if (!ledger_retryable(sqlstate))
			break;
	}
	return C_ERR;
}

/* The writer: group commit over two connections. Group k+1's post_group()
 * runs while group k's COMMIT is flushed; it is sent only after group k's
 * post_group() has returned, so group k already holds the locks of its
 * members and a later message of the same member waits for its COMMIT
 * (arrival order per member is kept across groups). */
void *
writer_main(void *arg)
{
	struct dbconn *dcs = arg;
	size_t cap = (size_t)g_server.conf.commit_max_messages;
	struct writer_slot slots[2];
	int cur = 0;

	memset(slots, 0, sizeof(slots));
	for (int i = 0; i < 2; i++) {
		slots[i].group = calloc(cap + 1, sizeof(*slots[i].group));
		PTS_ASSERT(slots[i].group != NULL);
	}
	for (;;) {
		struct writer_slot *w = &slots[cur], *other = &slots[1 - cur];

		w->n = writer_take_group(&g_server.writeq, w->group, cap, !other->committing);
		if (w->n == 0) {
			if (!other->committing)
				break;
			writer_finish(other);
			continue;
		}
		ledger_group_init(&w->lg, &dcs[cur], w->group, w->n);
		if (w->lg.m == 0) {
			/* every item already answered (refused before the database) */
			ledger_group_free(&w->lg);
			writer_deliver(w->group, w->n, 0);
			continue;
		}
		if (writer_post(w, other) != C_OK) {
			writer_finish(other);
			writer_fail(w, &dcs[cur]);
			continue;
		}
		cur = 1 - cur;
	}
	for (int i = 0; i < 2; i++)
		free(slots[i].group);
	return NULL;
}

void *
reader_main(void *arg)
{
	struct dbconn *dc = arg;
	struct job_queue *q = &g_server.readq;

	for (;;) {
		struct job *j;

		pthread_mutex_lock(&q->mu);
		while (q->head == NULL && !q->stopping)
			pthread_cond_wait(&q->cv, &q->mu);
		j = jobq_pop_locked(q);
		pthread_mutex_unlock(&q->mu);
		if (j == NULL)
			break;
		j->db_failed = ledger_read(dc, j) != C_OK;
		worker_deliver(j->owner, j);
	}
	return NULL;
}
