/* writer.c - the writer thread: group commit over WRITER_SLOTS database
 * connections. Each slot carries one group through post_group(), its
 * receipts and its COMMIT (ledger.c); groups that share no member and no id
 * are posted side by side (clearing/groupkeys.c), and a job is answered
 * only after its COMMIT. The thread never waits on one connection while
 * the other has results in or a group could be sent: it polls both
 * connections and the queue, and moves whichever slot is ready.
 * Never answers a job whose outcome it does not know (that is a 503). */
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "groupkeys.h"
#include "ledger.h"
#include "metrics.h"
#include "pts_assert.h"
#include "server.h"

/* IDLE -> HELD (taken; waits while a group sharing a key is in post_group)
 * -> POSTING (sent) -> COMMITTING (rows read, receipts and COMMIT sent)
 * -> IDLE (COMMIT read, jobs answered) */
#define WRITER_SIDE_BY_SIDE_MIN 4

enum slot_state { SLOT_IDLE, SLOT_HELD, SLOT_POSTING, SLOT_COMMITTING };

struct writer_slot {
	struct job **group;
	size_t n;
	struct ledger_group lg;
	struct dbconn *dc;
	enum slot_state state;
	long long seq;            /* order in which groups were taken */
	json_t *keys;             /* members and ids of the group (a set) */
};

static void
writer_deliver(struct job **group, size_t n, int failed)
{
	long long now = now_us();

	for (size_t i = 0; i < n; i++) {
		metrics_observe_posting(now - group[i]->enqueued_us);
		group[i]->db_failed = failed;
		worker_deliver(group[i]->owner, group[i]);
	}
}

static void
writer_observe_wait(struct job **group, size_t n)
{
	long long now = now_us();

	for (size_t i = 0; i < n; i++)
		metrics_observe_queue_wait(now - group[i]->enqueued_us);
}

static void
writer_release(struct writer_slot *w, int failed)
{
	ledger_group_free(&w->lg);
	json_decref(w->keys);
	w->keys = NULL;
	w->state = SLOT_IDLE;
	writer_deliver(w->group, w->n, failed);
}

/* moves a busy slot one step, waiting for its results if they are not all
 * in: HELD -> POSTING, POSTING -> COMMITTING, COMMITTING -> IDLE (jobs
 * answered). C_ERR: the group failed; the slot still holds it. */
static int
writer_step(struct writer_slot *w, char *sqlstate)
{
	switch (w->state) {
	case SLOT_HELD:
		if (ledger_group_send(&w->lg, sqlstate) != C_OK)
			return C_ERR;
		w->state = SLOT_POSTING;
		break;
	case SLOT_POSTING:
		if (ledger_group_post(&w->lg, sqlstate) != C_OK)
			return C_ERR;
		w->state = SLOT_COMMITTING;
		break;
	case SLOT_COMMITTING:
		if (ledger_group_commit(&w->lg, sqlstate) != C_OK)
			return C_ERR;
		writer_release(w, 0);
		break;
	case SLOT_IDLE:
		break;
	}
	return C_OK;
}

/* the busy slot whose group was taken first, NULL if all are idle */
static struct writer_slot *
writer_oldest_busy(struct writer_slot *slots)
{
	struct writer_slot *o = NULL;

	for (int i = 0; i < WRITER_SLOTS; i++)
		if (slots[i].state != SLOT_IDLE && (o == NULL || slots[i].seq < o->seq))
			o = &slots[i];
	return o;
}

static void writer_recover(struct writer_slot *slots, struct writer_slot *w,
    const char *sqlstate);
static struct writer_slot *writer_oldest_ready(struct writer_slot *slots);
static void writer_wait(struct writer_slot *slots, int want_job);

/* every busy slot to the end, whichever is ready first (a group may wait in
 * the database for a newer one's COMMIT), taking no new group */
static void
writer_drain(struct writer_slot *slots)
{
	while (writer_oldest_busy(slots) != NULL) {
		struct writer_slot *o = writer_oldest_ready(slots);
		char sqlstate[6] = "";

		if (o == NULL)
			writer_wait(slots, 0);
		else if (writer_step(o, sqlstate) != C_OK)
			writer_recover(slots, o, sqlstate);
	}
}

/* a group failed on its way (sqlstate: why): with every other group
 * finished, post it again alone (retried on a deadlock), then, if it still
 * fails, its jobs one by one, so that one bad message cannot fail the
 * others. A group that ran into the statement timeout (a lock held too
 * long, a stalled server) is answered 503 at once: a second try would wait
 * as long again, and db_timeout_ms is the partner's bound (protocol.md §5);
 * nor is a group split when its retry fails for a reason no message caused. */
static void
writer_recover(struct writer_slot *slots, struct writer_slot *w, const char *sqlstate)
{
	char again[6] = "";

	w->state = SLOT_IDLE;
	writer_drain(slots);
	ledger_group_free(&w->lg);
	json_decref(w->keys);
	w->keys = NULL;
	if (strcmp(sqlstate, "57014") == 0) {
		writer_deliver(w->group, w->n, 1);
		return;
	}
	if (ledger_post_group(w->dc, w->group, w->n, again) == C_OK) {
		writer_deliver(w->group, w->n, 0);
		return;
	}
	if (w->n == 1 || ledger_group_fault(again)) {
		writer_deliver(w->group, w->n, 1);
		return;
	}
	for (size_t i = 0; i < w->n; i++)
		writer_deliver(&w->group[i], 1,
		    ledger_post_group(w->dc, &w->group[i], 1, again) != C_OK);
}

/* may held slot w go out? Not while a group it shares a key with is in
 * post_group() (past it, that group holds its locks, so w's group waits for
 * them in the database, in order), nor before an older held group it
 * shares a key with */
static int
writer_blocked(const struct writer_slot *slots, const struct writer_slot *w)
{
	for (int i = 0; i < WRITER_SLOTS; i++) {
		const struct writer_slot *o = &slots[i];

		if (o != w && (o->state == SLOT_POSTING ||
		    (o->state == SLOT_HELD && o->seq < w->seq)) &&
		    group_keys_conflict(w->keys, o->keys))
			return 1;
	}
	return 0;
}

/* the oldest slot that can move without waiting: a sent group whose
 * results are all in, or a held group no longer blocked */
static struct writer_slot *
writer_oldest_ready(struct writer_slot *slots)
{
	struct writer_slot *o = NULL;

	for (int i = 0; i < WRITER_SLOTS; i++) {
		struct writer_slot *w = &slots[i];
		int ready = 0;

		if (w->state == SLOT_POSTING || w->state == SLOT_COMMITTING)
			ready = ledger_group_ready(&w->lg);
		else if (w->state == SLOT_HELD)
			ready = !writer_blocked(slots, w);
		if (ready && (o == NULL || w->seq < o->seq))
			o = w;
	}
	return o;
}

/* sleeps until a sent group's connection has data or, if want_job, a job
 * is queued */
static void
writer_wait(struct writer_slot *slots, int want_job)
{
	struct pollfd p[WRITER_SLOTS + 1];
	int n = 0, sleeping = 0;

	for (int i = 0; i < WRITER_SLOTS; i++)
		if ((slots[i].state == SLOT_POSTING || slots[i].state == SLOT_COMMITTING) &&
		    slots[i].dc->pg != NULL)
			p[n++] = (struct pollfd){ .fd = PQsocket(slots[i].dc->pg), .events = POLLIN };
	if (want_job) {
		sleeping = jobq_sleep_begin(&g_server.writeq);
		if (!sleeping)
			return;
		p[n++] = (struct pollfd){ .fd = g_server.writeq.wake_fd, .events = POLLIN };
	}
	if (n > 0)
		(void)poll(p, (nfds_t)n, 1000);
	if (sleeping)
		jobq_sleep_end(&g_server.writeq);
}

void *
writer_main(void *arg)
{
	struct dbconn *dcs = arg;
	size_t cap = (size_t)g_server.conf.commit_max_messages;
	struct writer_slot slots[WRITER_SLOTS];
	long long seq = 0;

	memset(slots, 0, sizeof(slots));
	for (int i = 0; i < WRITER_SLOTS; i++) {
		slots[i].dc = &dcs[i];
		slots[i].group = calloc(cap + 1, sizeof(*slots[i].group));
		PTS_ASSERT(slots[i].group != NULL);
	}
	for (;;) {
		struct writer_slot *w, *idle = NULL, *busy = writer_oldest_busy(slots);
		char sqlstate[6] = "";
		int posting = 0;

		/* whatever can move without waiting moves first, oldest first */
		if ((w = writer_oldest_ready(slots)) != NULL) {
			if (writer_step(w, sqlstate) != C_OK)
				writer_recover(slots, w, sqlstate);
			continue;
		}
		/* while a group is in post_group(), the next one gathers until it
		 * has WRITER_SIDE_BY_SIDE_MIN messages: two tiny groups side by
		 * side cost more than one of both on a busy machine (a group pays
		 * ~2 ms of statement set-up). bench/run.sh, single and open loop,
		 * one run each: 0 gave 2,574 msg/s, p50/p99 10.7/25.9 ms; 4 gave
		 * 2,787, 14.8/33.4; 64 gave 2,849, 14.1/59.7 (the writer that read
		 * its connections in turn: 2,922, 16.4/117.7) */
		for (int i = 0; i < WRITER_SLOTS; i++) {
			if (slots[i].state == SLOT_POSTING || slots[i].state == SLOT_HELD)
				posting = 1;
			if (slots[i].state == SLOT_IDLE && idle == NULL)
				idle = &slots[i];
		}
		if (posting && idle != NULL && jobq_depth(&g_server.writeq) < WRITER_SIDE_BY_SIDE_MIN)
			idle = NULL;
		/* a free slot takes the next group; it waits for one (and gathers
		 * it for commit_window_us) only when no group is in flight */
		if (idle != NULL) {
			idle->n = writer_take_group(&g_server.writeq, idle->group, cap, busy == NULL);
			if (idle->n == 0 && busy == NULL)
				break;
		}
		if (idle == NULL || idle->n == 0) {
			writer_wait(slots, idle != NULL);
			continue;
		}
		writer_observe_wait(idle->group, idle->n);
		ledger_group_init(&idle->lg, idle->dc, idle->group, idle->n);
		if (idle->lg.m == 0) {
			/* every item already answered (refused before the database) */
			ledger_group_free(&idle->lg);
			writer_deliver(idle->group, idle->n, 0);
			continue;
		}
		idle->keys = group_keys(idle->lg.items, idle->lg.m);
		idle->seq = ++seq;
		idle->state = SLOT_HELD;
	}
	for (int i = 0; i < WRITER_SLOTS; i++)
		free(slots[i].group);
	return NULL;
}
