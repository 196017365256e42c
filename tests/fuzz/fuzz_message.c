/* fuzz_message.c - libFuzzer target for the payload schema (message.c):
 * any JSON text, loaded as jws.c loads it (no duplicates), then
 * message_peek_id and message_validate. A payload the schema accepts must
 * satisfy every rule of protocol.md §2, checked here independently. */
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "clearing/message.h"
#include "errors.h"
#include "fuzz_util.h"

static int
fuzz_token_ok(const char *s, const char *extra, size_t max)
{
	size_t n = strlen(s);

	if (n < 1 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || strchr(extra, c) != NULL) || c == '\0')
			return 0;
	}
	return 1;
}

static int
fuzz_amount_ok(const char *s)
{
	size_t i = 0, d = 0;

	while (s[i] >= '0' && s[i] <= '9')
		i++;
	if (i < 1 || i > 15)
		return 0;
	if (s[i] == '\0')
		return 1;
	if (s[i] != '.')
		return 0;
	i++;
	while (s[i + d] >= '0' && s[i + d] <= '9')
		d++;
	return d >= 1 && d <= 6 && s[i + d] == '\0';
}

static void
fuzz_check_accepted(const json_t *p, const struct message *m)
{
	FUZZ_CHECK(json_is_object(p));
	FUZZ_CHECK(json_integer_value(json_object_get(p, "v")) == 1);
	FUZZ_CHECK(json_is_integer(json_object_get(p, "points")));
	FUZZ_CHECK(json_is_integer(json_object_get(p, "iat")));
	FUZZ_CHECK(m->type == MSG_ISSUE || m->type == MSG_REDEEM || m->type == MSG_REVERSE);
	FUZZ_CHECK(m->points >= 1 && m->points <= 1000000000LL);
	FUZZ_CHECK(fuzz_token_ok(m->id, "._:-", 64));
	FUZZ_CHECK(fuzz_token_ok(m->member, "._-", 64));
	FUZZ_CHECK(m->partner[0] != '\0');
	FUZZ_CHECK((m->type == MSG_REVERSE) == (m->reverses[0] != '\0'));
	FUZZ_CHECK((m->amount[0] != '\0') == (m->currency[0] != '\0'));
	if (m->amount[0] != '\0') {
		FUZZ_CHECK(m->type != MSG_REVERSE);
		FUZZ_CHECK(fuzz_amount_ok(m->amount));
		FUZZ_CHECK(strlen(m->currency) == 3);
		for (int i = 0; i < 3; i++)
			FUZZ_CHECK(m->currency[i] >= 'A' && m->currency[i] <= 'Z');
	}
	FUZZ_CHECK(json_object_size(p) <= 10);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t e;
	json_t *p;
	struct message m;
	const char *detail = NULL;
	char id[65];
	enum err rc;

	if (size > 64 * 1024)
		return 0;
	/* as jws.c loads it, and with NUL bytes let through to the schema */
	for (int pass = 0; pass < 2; pass++) {
		p = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES |
		    (pass == 1 ? JSON_ALLOW_NUL : 0), &e);
		if (message_peek_id(p, id) == C_OK)
			FUZZ_CHECK(fuzz_token_ok(id, "._:-", 64));
		rc = message_validate(p, &m, &detail);
		if (rc == ERR_OK)
			fuzz_check_accepted(p, &m);
		else
			FUZZ_CHECK(rc == ERR_INVALID_MESSAGE && detail != NULL);
		json_decref(p);
	}
	return 0;
}
