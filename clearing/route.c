/* route.c - path routing, media type and batch line splitting: pure
 * functions over bytes. Never allocates, never touches libevent. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "errors.h"
#include "route.h"

static int
route_path_arg(const char *path, const char *prefix, char *out, size_t cap)
{
	size_t n = strlen(prefix), len;

	if (strncmp(path, prefix, n) != 0)
		return C_ERR;
	len = strlen(path + n);
	if (len == 0 || len >= cap)
		return C_ERR;
	for (size_t i = 0; i < len; i++) {
		char ch = path[n + i];
		if (!(isalnum((unsigned char)ch) || ch == '.' || ch == '_' || ch == ':' || ch == '-'))
			return C_ERR;
	}
	memcpy(out, path + n, len + 1);
	return C_OK;
}

enum route
route_match(const char *path, char *arg, size_t cap, int *is_post)
{
	*is_post = 0;
	arg[0] = '\0';
	if (strcmp(path, "/v1/messages") == 0) {
		*is_post = 1;
		return R_MESSAGES;
	}
	if (strcmp(path, "/v1/batches") == 0) {
		*is_post = 1;
		return R_BATCHES;
	}
	if (strcmp(path, "/v1/keys") == 0)
		return R_KEYS;
	if (strcmp(path, "/v1/settlements") == 0)
		return R_SETTLEMENTS;
	if (route_path_arg(path, "/v1/settlements/", arg, cap) == C_OK)
		return R_SETTLEMENT;
	if (route_path_arg(path, "/v1/messages/", arg, cap) == C_OK)
		return R_MESSAGE;
	if (route_path_arg(path, "/v1/members/", arg, cap) == C_OK)
		return R_MEMBER;
	return R_NONE;
}

int
route_is_jose(const char *ct)
{
	size_t n = strlen("application/jose");

	if (ct == NULL || strncasecmp(ct, "application/jose", n) != 0)
		return 0;
	return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

size_t
route_split_batch(const char *body, size_t len, struct batch_line *lines, size_t max)
{
	const char *p = body, *end = body + len;
	size_t n = 0;

	if (len == 0) {
		if (max > 0) {
			lines[0].p = body;
			lines[0].len = 0;
		}
		return 1;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t ll = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);

		if (n < max) {
			lines[n].p = p;
			lines[n].len = ll;
		}
		n++;
		p = nl != NULL ? nl + 1 : end;
	}
	return n;
}
