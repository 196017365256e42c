/* fuzz_route.c - libFuzzer target for the pure part of the request path
 * (route.c): input "METHOD\nPATH\nCONTENT-TYPE\nBODY". Routes the path as
 * request_handle does, applies the media type rule and the size and line
 * limits of protocol.md §6 in request.c's order, splits a batch body, and
 * parses each message as request_prepare_item does. libevent's own HTTP
 * parser is not reached: see docs/security.md (fuzzing) for why. */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "clearing/jws.h"
#include "clearing/route.h"
#include "errors.h"
#include "fuzz_util.h"
#include "pts_limits.h"

static struct batch_line lines[LIMIT_BATCH_LINES];

/* the next '\n'-terminated field of [*p, end) as a NUL-terminated copy */
static char *
fuzz_field(const uint8_t **p, const uint8_t *end)
{
	const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
	size_t n = nl != NULL ? (size_t)(nl - *p) : (size_t)(end - *p);
	char *s = fuzz_cstr(*p, n);

	*p = nl != NULL ? nl + 1 : end;
	return s;
}

static void
fuzz_check_route(const char *path, enum route r, const char *arg, int is_post)
{
	static const char *const prefix[] = {
		[R_MESSAGE] = "/v1/messages/", [R_MEMBER] = "/v1/members/",
		[R_SETTLEMENT] = "/v1/settlements/" };
	size_t n;

	FUZZ_CHECK(is_post == (r == R_MESSAGES || r == R_BATCHES));
	if (r != R_MESSAGE && r != R_MEMBER && r != R_SETTLEMENT) {
		FUZZ_CHECK(arg[0] == '\0');
		return;
	}
	n = strlen(arg);
	FUZZ_CHECK(n >= 1 && n <= 64);
	FUZZ_CHECK(strspn(arg, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789._:-") == n);
	/* the argument is exactly the rest of the path: no '/', no '%' */
	FUZZ_CHECK(strlen(path) == strlen(prefix[r]) + n);
	FUZZ_CHECK(strncmp(path, prefix[r], strlen(prefix[r])) == 0);
	FUZZ_CHECK(strcmp(path + strlen(prefix[r]), arg) == 0);
}

static void
fuzz_check_jose(const char *ct)
{
	int is = route_is_jose(ct);
	size_t n = strlen("application/jose");

	if (!is)
		return;
	FUZZ_CHECK(strncasecmp(ct, "application/jose", n) == 0);
	FUZZ_CHECK(ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static void
fuzz_one_message(const char *p, size_t len)
{
	struct jws t;
	enum err rc;

	if (len > LIMIT_MESSAGE_BYTES)
		return;  /* payload_too_large before any parsing */
	rc = jws_parse(p, len, &t);
	FUZZ_CHECK(rc == ERR_OK || rc == ERR_MALFORMED_JWS || rc == ERR_UNSUPPORTED_ALG);
	jws_free(&t);
}

static void
fuzz_body(enum route r, const char *ct, const uint8_t *body, size_t len)
{
	size_t n, total = 0;

	if (r != R_MESSAGES && r != R_BATCHES)
		return;
	if (!route_is_jose(ct))
		return;  /* 415 */
	if (r == R_MESSAGES) {
		if (len > LIMIT_MESSAGE_BYTES + 1)
			return;  /* 413 */
		if (len > 0 && body[len - 1] == '\n')
			len--;
		fuzz_one_message((const char *)body, len);
		return;
	}
	n = route_split_batch((const char *)body, len, lines, LIMIT_BATCH_LINES);
	FUZZ_CHECK(n >= 1);
	if (n > LIMIT_BATCH_LINES)
		return;  /* 413 */
	for (size_t i = 0; i < n; i++) {
		FUZZ_CHECK(memchr(lines[i].p, '\n', lines[i].len) == NULL);
		total += lines[i].len + 1;
		fuzz_one_message(lines[i].p, lines[i].len);
	}
	FUZZ_CHECK(total == len + 1 || total == len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;
	char *method, *path, *ct, arg[65];
	int is_post = -1;
	enum route r;

	method = fuzz_field(&p, end);
	path = fuzz_field(&p, end);
	ct = fuzz_field(&p, end);
	memset(arg, 'x', sizeof(arg));
	r = route_match(path, arg, sizeof(arg), &is_post);
	fuzz_check_route(path, r, arg, is_post);
	fuzz_check_jose(ct);
	if (is_post == (strcmp(method, "POST") == 0))
		fuzz_body(r, ct, p, (size_t)(end - p));
	free(method);
	free(path);
	free(ct);
	return 0;
}
