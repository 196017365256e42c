/* post.c - the bounded job queues between the workers and the database
 * threads, how the writer takes a group from its queue (writer.c posts it),
 * and the reader thread for partner reads. A job is answered only after its
 * transaction committed; when the outcome is unknown the answer is 503. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "ledger.h"
#include "pts_assert.h"
#include "server.h"

void
jobq_init(struct job_queue *q, size_t max_messages)
{
	memset(q, 0, sizeof(*q));
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	q->max_messages = max_messages;
	q->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	PTS_ASSERT(q->wake_fd >= 0);
}

static void
jobq_wake_locked(struct job_queue *q)
{
	uint64_t one = 1;

	if (q->sleeping)
		(void)!write(q->wake_fd, &one, sizeof(one));
}

size_t
jobq_depth(struct job_queue *q)
{
	size_t n;

	pthread_mutex_lock(&q->mu);
	n = q->nmessages;
	pthread_mutex_unlock(&q->mu);
	return n;
}

int
jobq_sleep_begin(struct job_queue *q)
{
	int sleep;

	pthread_mutex_lock(&q->mu);
	sleep = q->head == NULL && !q->stopping;
	q->sleeping = sleep;
	pthread_mutex_unlock(&q->mu);
	return sleep;
}

void
jobq_sleep_end(struct job_queue *q)
{
	uint64_t v;

	pthread_mutex_lock(&q->mu);
	q->sleeping = 0;
	pthread_mutex_unlock(&q->mu);
	(void)!read(q->wake_fd, &v, sizeof(v));
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
		jobq_wake_locked(q);
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
	jobq_wake_locked(q);
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
size_t
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
