/* ledger.h - the SQL side of posting and reading (sql/002_posting.sql). */
#ifndef PTS_LEDGER_H
#define PTS_LEDGER_H

#include "dbconn.h"
#include "server.h"

/* post the non-terminal items of n jobs in one transaction; C_OK when
 * committed (each item then has its result), C_ERR when the outcome is unknown */
int ledger_post_group(struct dbconn *dc, struct job **jobs, size_t n);
/* a partner read; C_OK with j->read_json set (NULL: not found) */
int ledger_read(struct dbconn *dc, struct job *j);

#endif
