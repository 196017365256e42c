/* log.c - JSON-lines logger. Never logs secrets; callers pass only public data. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/time.h>

#include "log.h"
#include "pts_assert.h"

static enum log_level log_min_level = LOG_INFO;
static const char *const log_level_names[] = { "debug", "info", "warn", "error" };

void
log_set_level(enum log_level level)
{
	log_min_level = level;
}

const char *
log_json_str(char *buf, size_t cap, const char *s)
{
	size_t n = 0;

	PTS_ASSERT(cap >= 8);
	buf[n++] = '"';
	for (; s != NULL && *s != '\0' && n + 8 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			buf[n++] = '\\';
			buf[n++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			n += (size_t)snprintf(buf + n, cap - n, "\\u%04x", c);
		} else {
			buf[n++] = (char)c;
		}
	}
	buf[n++] = '"';
	buf[n] = '\0';
	return buf;
}

void
log_event(enum log_level level, const char *event, const char *fmt, ...)
{
	char line[4096];
	struct timeval tv;
	struct tm tm;
	size_t n;
	int w;

	if (level < log_min_level)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	w = snprintf(line, sizeof(line),
	    "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ\",\"level\":\"%s\","
	    "\"event\":\"%s\"",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, (long)tv.tv_usec, log_level_names[level], event);
	n = (w > 0 && (size_t)w < sizeof(line)) ? (size_t)w : sizeof(line) - 1;
	if (fmt != NULL && n + 2 < sizeof(line)) {
		va_list ap;
		line[n++] = ',';
		va_start(ap, fmt);
		w = vsnprintf(line + n, sizeof(line) - n - 2, fmt, ap);
		va_end(ap);
		if (w > 0)
			n += ((size_t)w < sizeof(line) - n - 2) ? (size_t)w : sizeof(line) - n - 3;
	}
	line[n++] = '}';
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, n);
}

void
pts_assert_fail(const char *cond, const char *file, int line)
{
	char c[512], f[256];

	log_event(LOG_ERROR, "assert_failed", "\"cond\":%s,\"file\":%s,\"line\":%d",
	    log_json_str(c, sizeof(c), cond), log_json_str(f, sizeof(f), file), line);
	abort();
}
