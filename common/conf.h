/* conf.h - pointsd configuration: `key = value` file, then --key=value flags.
 * Owns: the list of keys, their defaults and bounds (docs/operations.md). */
#ifndef PTS_CONF_H
#define PTS_CONF_H

#include <stddef.h>

struct conf {
	char listen[128];
	char metrics_listen[128];
	char db[1024];
	char tls_cert[512];
	char tls_key[512];
	char tls_ca[512];
	char tls_crl[512];
	char receipt_key[512];
	char log_level[16];
	long long threads;
	long long iat_window_s;
	long long commit_max_messages;
	long long commit_window_us;
	long long max_connections;
	long long partner_inflight_max;
	long long queue_max_messages;
	long long body_buffer_max_bytes;
	long long request_deadline_ms;
	long long idle_timeout_ms;
	long long db_timeout_ms;
	long long settle_auto;
	long long expire_auto;
	long long unsafe_no_durability;
};

struct conf_key {
	const char *name;
	int is_string;
	size_t offset;
	size_t size;       /* strings: buffer size */
	long long min, max; /* integers: bounds */
	const char *def;
	const char *doc;
};

extern const struct conf_key conf_keys[];
extern const size_t conf_keys_count;

void conf_defaults(struct conf *c);
/* set one key; C_OK, or C_ERR with a one-line reason in err */
int conf_set(struct conf *c, const char *key, const char *value, char *err, size_t errcap);
/* parse file text (not a path) of `key = value` lines, # comments */
int conf_parse_text(struct conf *c, const char *text, char *err, size_t errcap);
int conf_load_file(struct conf *c, const char *path, char *err, size_t errcap);

#endif
