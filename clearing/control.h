/* control.h - the control thread and start-up checks against the database. */
#ifndef PTS_CONTROL_H
#define PTS_CONTROL_H

#include <libpq-fe.h>

#include "dbconn.h"
#include "server.h"

int control_init(void);
void control_wake(void);
int control_reload_registry(PGconn *pg);
int control_publish_receipt_key(PGconn *pg);
int control_check_durability(PGconn *pg, char *err, size_t errcap);
/* makes the row of the period of now() + 60 s (at start, then every 10 s) */
void control_prepare_period(struct dbconn *dc);

#endif
