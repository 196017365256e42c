/* ledger.h - the SQL side of posting and reading (sql/002_posting.sql). */
#ifndef PTS_LEDGER_H
#define PTS_LEDGER_H

#include "dbconn.h"
#include "server.h"

#define LEDGER_RQ_MAX 32

/* one group of jobs on its way through one transaction on one connection */
struct ledger_group {
	struct dbconn *dc;
	struct post_item **items;   /* the non-terminal items of the jobs */
	size_t m;
	long long t0_us;
	long long deadline_us;      /* the first job's enqueue + db_timeout_ms */
	int pending_syncs;          /* a pipeline sync sent, not yet read */
	int receipts_sent;
	/* the current phase's results as they arrive, up to its sync (NULL
	 * entries end a query's results, as PQgetResult() gives them) */
	PGresult *rq[LEDGER_RQ_MAX];
	int rq_n, rq_pos;
	int rq_done;                /* the sync is in, or the connection broke */
};

void ledger_group_init(struct ledger_group *g, struct dbconn *dc, struct job **jobs, size_t n);
void ledger_group_free(struct ledger_group *g);
/* 1: send BEGIN and post_group(); 2: read its rows, sign receipts, send
 * their INSERT and COMMIT; 3: read the COMMIT. Each returns C_OK or C_ERR
 * with sqlstate (char[6]) set when the database gave one; after C_ERR the
 * transaction is rolled back and the connection idle (or closed). */
int ledger_group_send(struct ledger_group *g, char *sqlstate);
/* reads what has arrived of the current phase's results without blocking:
 * 1 when all of them are in (or the connection broke), 0 if more are due;
 * the connection's socket (PQsocket) then becomes readable. Phases 2 and 3
 * wait for them if called before. */
int ledger_group_ready(struct ledger_group *g);
int ledger_group_post(struct ledger_group *g, char *sqlstate);
int ledger_group_commit(struct ledger_group *g, char *sqlstate);
/* a deadlock or serialization failure: the group may be tried again */
int ledger_retryable(const char *sqlstate);
/* a failure no single message of the group caused: a timeout, a cancel,
 * a lost connection (no SQLSTATE), the server's resources or shutdown */
int ledger_group_fault(const char *sqlstate);
/* post the non-terminal items of n jobs in one transaction; C_OK when
 * committed (each item then has its result), C_ERR when the outcome is
 * unknown, with sqlstate (char[6]) from the last try */
int ledger_post_group(struct dbconn *dc, struct job **jobs, size_t n, char *sqlstate);
/* a partner read; C_OK with j->read_json set (NULL: not found) */
int ledger_read(struct dbconn *dc, struct job *j);

#endif
