/* ledger.h - the SQL side of posting and reading (sql/002_posting.sql). */
#ifndef PTS_LEDGER_H
#define PTS_LEDGER_H

#include "dbconn.h"
#include "server.h"

/* one group of jobs on its way through one transaction on one connection */
struct ledger_group {
	struct dbconn *dc;
	struct post_item **items;   /* the non-terminal items of the jobs */
	size_t m;
	long long t0_us;
	int pending_syncs;          /* a pipeline sync sent, not yet read */
	int receipts_sent;
};

void ledger_group_init(struct ledger_group *g, struct dbconn *dc, struct job **jobs, size_t n);
void ledger_group_free(struct ledger_group *g);
/* 1: send BEGIN and post_group(); 2: read its rows, sign receipts, send
 * their INSERT and COMMIT; 3: read the COMMIT. Each returns C_OK or C_ERR
 * with sqlstate (char[6]) set when the database gave one; after C_ERR the
 * transaction is rolled back and the connection idle (or closed). */
int ledger_group_send(struct ledger_group *g, char *sqlstate);
int ledger_group_post(struct ledger_group *g, char *sqlstate);
int ledger_group_commit(struct ledger_group *g, char *sqlstate);
/* a deadlock or serialization failure: the group may be tried again */
int ledger_retryable(const char *sqlstate);
/* post the non-terminal items of n jobs in one transaction; C_OK when
 * committed (each item then has its result), C_ERR when the outcome is unknown */
int ledger_post_group(struct dbconn *dc, struct job **jobs, size_t n);
/* a partner read; C_OK with j->read_json set (NULL: not found) */
int ledger_read(struct dbconn *dc, struct job *j);

#endif
