/* message.h - the payload schema of partner messages (protocol.md §2).
 * Owns: field types, ranges and charsets. Never checks the partner identity,
 * the iat window or the ledger (the pipeline does, in §2.1 order). */
#ifndef PTS_MESSAGE_H
#define PTS_MESSAGE_H

#include <jansson.h>

#include "errors.h"

enum msg_type { MSG_ISSUE = 1, MSG_REDEEM, MSG_REVERSE };

struct message {
	enum msg_type type;
	char partner[65], id[65], member[65], reverses[65]; /* reverses "" unless reverse */
	long long points, iat;
	char amount[24];        /* "" when absent */
	char currency[4];       /* "" when absent */
};

/* the duplicate check (§2.1) runs before the schema: extracts "id" if it is
 * a string of 1..64 chars of [A-Za-z0-9._:-]; C_OK or C_ERR */
int message_peek_id(const json_t *payload, char id_out[65]);
/* ERR_OK, or ERR_INVALID_MESSAGE with *detail a static string such as
 * "points: must be an integer from 1 to 1000000000" */
enum err message_validate(const json_t *payload, struct message *out,
    const char **detail);
const char *message_type_name(enum msg_type t);

#endif
