/* metrics.h - counters and histograms of pointsd, rendered in the Prometheus
 * text exposition format on the plain-HTTP metrics listener, with /healthz
 * and /readyz. Counting is lock-free (relaxed atomics). */
#ifndef PTS_METRICS_H
#define PTS_METRICS_H

#include <event2/event.h>

#include "clearing/message.h"
#include "errors.h"

void metrics_count_status(int http_status);
/* one message judged: type may be 0 when it could not be read */
void metrics_count_message(enum msg_type type, enum err result, int replayed);
void metrics_observe_group(size_t messages, long long commit_us);
/* microseconds a posting request waited in the writer queue, and from its
 * entering the queue to its answer */
void metrics_observe_queue_wait(long long us);
void metrics_observe_posting(long long us);
void metrics_count_event(const char *name);   /* "settle_run", "expiry_run", "db_reconnect" */
int metrics_start(struct event_base *base, const char *addr_port, char *err, size_t errcap);

#endif
