/* fuzz_conf.c - libFuzzer target for the configuration parser
 * (conf_parse_text, conf_set): any text; on success every integer key is
 * inside its bounds and every string key is NUL-terminated inside its
 * buffer; on failure the error is one non-empty line. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "errors.h"
#include "fuzz_util.h"

static void
fuzz_check_conf(const struct conf *c)
{
	for (size_t i = 0; i < conf_keys_count; i++) {
		const struct conf_key *k = &conf_keys[i];
		const char *base = (const char *)c + k->offset;

		if (k->is_string) {
			FUZZ_CHECK(memchr(base, '\0', k->size) != NULL);
		} else {
			long long v = *(const long long *)(const void *)base;
			FUZZ_CHECK(v >= k->min && v <= k->max);
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf c;
	char err[256];
	char *text;
	int rc;

	if (size > 64 * 1024)
		return 0;
	text = fuzz_cstr(data, size);
	conf_defaults(&c);
	fuzz_check_conf(&c);
	err[0] = '\0';
	rc = conf_parse_text(&c, text, err, sizeof(err));
	if (rc == C_OK)
		fuzz_check_conf(&c);
	else
		FUZZ_CHECK(rc == C_ERR && err[0] != '\0' && strchr(err, '\n') == NULL);
	free(text);
	return 0;
}
