/* writer.c - the writer thread: group commit over WRITER_SLOTS database
 * connections. Each slot carries one group through post_group(), its
 * receipts and its COMMIT (ledger.c); groups that share no member and no id
 * are posted side by side, and a job is answered only after its COMMIT.
 * Never answers a job whose outcome it does not know (that is a 503). */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "groupkeys.h"
#include "ledger.h"
#include "pts_assert.h"
#include "server.h"

enum slot_state { SLOT_IDLE, SLOT_POSTING, SLOT_COMMITTING };

struct writer_slot {
	struct job **group;
	size_t n;
	struct ledger_group lg;
	struct dbconn *dc;
	enum slot_state state;
	long long seq;            /* order in which groups were sent */
	json_t *keys;             /* members and ids of the group (a set) */
};

static void
writer_deliver(struct job **group, size_t n, int failed)
{
	for (size_t i = 0; i < n; i++) {
		group[i]->db_failed = failed;
		worker_deliver(group[i]->owner, group[i]);
	}
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

/* moves a busy slot one step: POSTING -> COMMITTING (post_group()'s rows
 * read, receipts signed, COMMIT sent) or COMMITTING -> IDLE (COMMIT read,
 * jobs answered). C_ERR: the group failed; the slot still holds it. */
static int
writer_step(struct writer_slot *w, char *sqlstate)
{
	if (w->state == SLOT_POSTING) {
		if (ledger_group_post(&w->lg, sqlstate) != C_OK)
			return C_ERR;
		w->state = SLOT_COMMITTING;
		return C_OK;
	}
	if (w->state == SLOT_COMMITTING) {
		if (ledger_group_commit(&w->lg, sqlstate) != C_OK)
			return C_ERR;
		writer_release(w, 0);
	}
	return C_OK;
}

/* the busy slot whose group was sent first, NULL if all are idle */
static struct writer_slot *
writer_oldest_busy(struct writer_slot *slots)
{
	struct writer_slot *o = NULL;

	for (int i = 0; i < WRITER_SLOTS; i++)
		if (slots[i].state != SLOT_IDLE && (o == NULL || slots[i].seq < o->seq))
			o = &slots[i];
	return o;
}

static void writer_recover(struct writer_slot *slots, struct writer_slot *w);

/* every busy slot to the end, oldest first */
static void
writer_drain(struct writer_slot *slots)
{
	struct writer_slot *o;

	while ((o = writer_oldest_busy(slots)) != NULL) {
		char sqlstate[6] = "";
		if (writer_step(o, sqlstate) != C_OK)
			writer_recover(slots, o);
	}
}

/* a group failed on its way: with every other group finished, post it again
 * alone (retried on a deadlock), then, if it still fails, its jobs one by
 * one, so that one bad message cannot fail the others */
static void
writer_recover(struct writer_slot *slots, struct writer_slot *w)
{
	w->state = SLOT_IDLE;
	writer_drain(slots);
	ledger_group_free(&w->lg);
	json_decref(w->keys);
	w->keys = NULL;
	if (ledger_post_group(w->dc, w->group, w->n) == C_OK) {
		writer_deliver(w->group, w->n, 0);
		return;
	}
	if (w->n == 1) {
		writer_deliver(w->group, 1, 1);
		return;
	}
	for (size_t i = 0; i < w->n; i++)
		writer_deliver(&w->group[i], 1, ledger_post_group(w->dc, &w->group[i], 1) != C_OK);
}

/* sends slot w's new group; a group it shares a member or an id with is
 * first moved past post_group() (its locks are then held and its COMMIT is
 * on its way, so w's group waits for them in the database, in order) */
static void
writer_send(struct writer_slot *slots, struct writer_slot *w, long long seq)
{
	char sqlstate[6] = "";

	w->keys = group_keys(w->lg.items, w->lg.m);
	for (int i = 0; i < WRITER_SLOTS; i++) {
		struct writer_slot *o = &slots[i];
		if (o != w && o->state == SLOT_POSTING && group_keys_conflict(w->keys, o->keys) &&
		    writer_step(o, sqlstate) != C_OK)
			writer_recover(slots, o);
	}
	w->seq = seq;
	if (ledger_group_send(&w->lg, sqlstate) != C_OK) {
		writer_recover(slots, w);
		return;
	}
	w->state = SLOT_POSTING;
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
		struct writer_slot *w = NULL, *busy = writer_oldest_busy(slots);
		char sqlstate[6] = "";

		for (int i = 0; i < WRITER_SLOTS && w == NULL; i++)
			if (slots[i].state == SLOT_IDLE)
				w = &slots[i];
		if (w != NULL)
			w->n = writer_take_group(&g_server.writeq, w->group, cap, busy == NULL);
		if (w == NULL || w->n == 0) {
			if (busy == NULL)
				break;
			/* nothing new to send: move the oldest group on */
			if (writer_step(busy, sqlstate) != C_OK)
				writer_recover(slots, busy);
			continue;
		}
		ledger_group_init(&w->lg, w->dc, w->group, w->n);
		if (w->lg.m == 0) {
			/* every item already answered (refused before the database) */
			ledger_group_free(&w->lg);
			writer_deliver(w->group, w->n, 0);
			continue;
		}
		writer_send(slots, w, ++seq);
	}
	for (int i = 0; i < WRITER_SLOTS; i++)
		free(slots[i].group);
	return NULL;
}
