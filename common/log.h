/* log.h - JSON-lines log on stderr, one line per request and per event.
 * Thread-safe: each line is built in a local buffer and written with one write(2). */
#ifndef PTS_LOG_H
#define PTS_LOG_H

#include <stdarg.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level level);
/* event: short snake_case name; fmt: extra JSON members, e.g. "\"kid\":%s"
 * where string values must be produced with log_json_str(); may be NULL */
void log_event(enum log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* escapes s as a JSON string (with quotes) into buf; returns buf */
const char *log_json_str(char *buf, size_t cap, const char *s);

#endif
