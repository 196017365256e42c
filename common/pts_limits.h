/* limits.h - every fixed limit of the protocol, with its unit.
 * Configurable limits have their defaults here; conf.c may raise or lower them
 * within the bounds asserted below. */
#ifndef PTS_PTS_LIMITS_H
#define PTS_PTS_LIMITS_H

/* protocol.md §6 */
#define LIMIT_HEADER_BYTES          (16 * 1024)
#define LIMIT_MESSAGE_BYTES         (16 * 1024)
#define LIMIT_BATCH_BYTES           (16 * 1024 * 1024)
#define LIMIT_BATCH_LINES           10000

/* protocol.md §2 payload */
#define LIMIT_ID_CHARS              64
#define LIMIT_MEMBER_CHARS          64
#define LIMIT_PARTNER_CHARS         64
#define LIMIT_KID_CHARS             128
#define LIMIT_POINTS_MAX            1000000000LL
#define LIMIT_AMOUNT_INT_DIGITS     15
#define LIMIT_AMOUNT_FRAC_DIGITS    6

/* settlement.md §1: prices are at most 1,000 per point, in micro-units */
#define LIMIT_PRICE_MICROS_MAX      1000000000LL
#define MICROS_PER_UNIT             1000000LL

/* defaults of configurable limits (docs/operations.md lists the keys) */
#define DEFAULT_IAT_WINDOW_S        300
#define DEFAULT_MAX_CONNECTIONS     10000
#define DEFAULT_PARTNER_INFLIGHT    1000
#define DEFAULT_QUEUE_MESSAGES      65536
#define DEFAULT_BODY_BUFFER_BYTES   (256LL * 1024 * 1024)
#define DEFAULT_REQUEST_DEADLINE_MS 30000
#define DEFAULT_IDLE_TIMEOUT_MS     30000
#define DEFAULT_DB_TIMEOUT_MS       2000
#define DEFAULT_COMMIT_MAX_MESSAGES 512
#define DEFAULT_COMMIT_WINDOW_US    2000

/* a JWS of at most LIMIT_MESSAGE_BYTES decodes to less than that */
#define LIMIT_JWS_PART_BYTES        LIMIT_MESSAGE_BYTES

_Static_assert(LIMIT_MESSAGE_BYTES < LIMIT_BATCH_BYTES,
    "a batch line must fit in a batch");
_Static_assert((long long)LIMIT_BATCH_LINES * 2 <= LIMIT_BATCH_BYTES,
    "the line limit is reachable within the byte limit");
_Static_assert(LIMIT_POINTS_MAX * LIMIT_PRICE_MICROS_MAX <= 9223372036854775807LL,
    "one message's money in micro-units fits in 64 bits");
_Static_assert(DEFAULT_COMMIT_MAX_MESSAGES <= LIMIT_BATCH_LINES,
    "a group is never larger than a batch");

#endif
