/* message.c - payload schema of partner messages (protocol.md §2): exact
 * fields, JSON types, ranges and charsets, checked after unescaping.
 * Never looks at keys, time, the partner identity or the database. */
#include <string.h>

#include "message.h"
#include "pts_limits.h"
#include "pts_assert.h"

enum msg_charset { CHARSET_NAME, CHARSET_ID };

static const char *const message_fields[] = {
	"v", "type", "partner", "id", "member", "points", "iat", "amount",
	"currency", "reverses",
};

const char *
message_type_name(enum msg_type t)
{
	switch (t) {
	case MSG_ISSUE:
		return "issue";
	case MSG_REDEEM:
		return "redeem";
	case MSG_REVERSE:
		return "reverse";
	}
	return "unknown";
}

/* [A-Za-z0-9._-], plus ':' for ids; every byte, so non-ASCII and NUL fail */
static int
message_char_ok(unsigned char c, enum msg_charset cs)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')
		return 1;
	return cs == CHARSET_ID && c == ':';
}

/* copies a string of 1..max_chars chars of the charset into out */
static int
message_get_token(const json_t *v, size_t max_chars, enum msg_charset cs,
    char *out)
{
	const char *s;
	size_t i, n;

	if (!json_is_string(v))
		return C_ERR;
	s = json_string_value(v);
	n = json_string_length(v);
	if (n < 1 || n > max_chars)
		return C_ERR;
	for (i = 0; i < n; i++) {
		if (!message_char_ok((unsigned char)s[i], cs))
			return C_ERR;
	}
	memcpy(out, s, n);
	out[n] = '\0';
	return C_OK;
}

int
message_peek_id(const json_t *payload, char id_out[65])
{
	id_out[0] = '\0';
	if (!json_is_object(payload))
		return C_ERR;
	return message_get_token(json_object_get(payload, "id"), LIMIT_ID_CHARS,
	    CHARSET_ID, id_out);
}

/* ^[0-9]{1,15}(\.[0-9]{1,6})?$ */
static int
message_amount_ok(const char *s, size_t n)
{
	size_t i = 0, int_digits = 0, frac_digits = 0;

	while (i < n && s[i] >= '0' && s[i] <= '9') {
		i++;
		int_digits++;
	}
	if (int_digits < 1 || int_digits > LIMIT_AMOUNT_INT_DIGITS)
		return 0;
	if (i == n)
		return 1;
	if (s[i] != '.')
		return 0;
	for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
		frac_digits++;
	return i == n && frac_digits >= 1 &&
	    frac_digits <= LIMIT_AMOUNT_FRAC_DIGITS;
}

static int
message_currency_ok(const char *s, size_t n)
{
	size_t i;

	if (n != 3)
		return 0;
	for (i = 0; i < n; i++) {
		if (s[i] < 'A' || s[i] > 'Z')
			return 0;
	}
	return 1;
}

static int
message_known_field(const char *key)
{
	size_t i;

	for (i = 0; i < sizeof(message_fields) / sizeof(message_fields[0]); i++) {
		if (strcmp(key, message_fields[i]) == 0)
			return 1;
	}
	return 0;
}

static int
message_str_eq(const json_t *v, const char *want)
{
	size_t n = strlen(want);

	return json_is_string(v) && json_string_length(v) == n &&
	    memcmp(json_string_value(v), want, n) == 0;
}

/* v, type, partner, id, member */
static enum err
message_check_head(const json_t *p, struct message *m, const char **detail)
{
	const json_t *v = json_object_get(p, "v");
	const json_t *type = json_object_get(p, "type");

	if (!json_is_integer(v) || json_integer_value(v) != 1) {
		*detail = "v: must be the integer 1";
		return ERR_INVALID_MESSAGE;
	}
	if (message_str_eq(type, "issue")) {
		m->type = MSG_ISSUE;
	} else if (message_str_eq(type, "redeem")) {
		m->type = MSG_REDEEM;
	} else if (message_str_eq(type, "reverse")) {
		m->type = MSG_REVERSE;
	} else {
		*detail = "type: must be issue, redeem or reverse";
		return ERR_INVALID_MESSAGE;
	}
	if (message_get_token(json_object_get(p, "partner"),
	    LIMIT_PARTNER_CHARS, CHARSET_NAME, m->partner) != C_OK) {
		*detail = "partner: must be 1 to 64 characters of [A-Za-z0-9._-]";
		return ERR_INVALID_MESSAGE;
	}
	if (message_get_token(json_object_get(p, "id"), LIMIT_ID_CHARS,
	    CHARSET_ID, m->id) != C_OK) {
		*detail = "id: must be 1 to 64 characters of [A-Za-z0-9._:-]";
		return ERR_INVALID_MESSAGE;
	}
	if (message_get_token(json_object_get(p, "member"),
	    LIMIT_MEMBER_CHARS, CHARSET_NAME, m->member) != C_OK) {
		*detail = "member: must be 1 to 64 characters of [A-Za-z0-9._-]";
		return ERR_INVALID_MESSAGE;
	}
	return ERR_OK;
}

/* points, iat */
static enum err
message_check_numbers(const json_t *p, struct message *m, const char **detail)
{
	const json_t *points = json_object_get(p, "points");
	const json_t *iat = json_object_get(p, "iat");

	if (!json_is_integer(points) || json_integer_value(points) < 1 ||
	    json_integer_value(points) > LIMIT_POINTS_MAX) {
		*detail = "points: must be an integer from 1 to 1000000000";
		return ERR_INVALID_MESSAGE;
	}
	m->points = json_integer_value(points);
	if (!json_is_integer(iat) || json_integer_value(iat) < 0) {
		*detail = "iat: must be a non-negative integer (unix seconds)";
		return ERR_INVALID_MESSAGE;
	}
	m->iat = json_integer_value(iat);
	return ERR_OK;
}

/* amount, currency: optional together, issue and redeem only */
static enum err
message_check_amount(const json_t *p, struct message *m, const char **detail)
{
	const json_t *amount = json_object_get(p, "amount");
	const json_t *currency = json_object_get(p, "currency");

	if (amount == NULL) {
		if (currency != NULL) {
			*detail = "currency: not allowed without amount";
			return ERR_INVALID_MESSAGE;
		}
		return ERR_OK;
	}
	if (m->type == MSG_REVERSE) {
		*detail = "amount: not allowed in a reverse";
		return ERR_INVALID_MESSAGE;
	}
	if (!json_is_string(amount) ||
	    !message_amount_ok(json_string_value(amount),
	    json_string_length(amount))) {
		*detail = "amount: must match ^[0-9]{1,15}(\\.[0-9]{1,6})?$";
		return ERR_INVALID_MESSAGE;
	}
	if (currency == NULL) {
		*detail = "currency: required with amount";
		return ERR_INVALID_MESSAGE;
	}
	if (!json_is_string(currency) ||
	    !message_currency_ok(json_string_value(currency),
	    json_string_length(currency))) {
		*detail = "currency: must be three upper-case letters";
		return ERR_INVALID_MESSAGE;
	}
	PTS_ASSERT(json_string_length(amount) < sizeof(m->amount));
	memcpy(m->amount, json_string_value(amount), json_string_length(amount) + 1);
	memcpy(m->currency, json_string_value(currency), 4);
	return ERR_OK;
}

/* reverses: required in a reverse, refused elsewhere */
static enum err
message_check_reverses(const json_t *p, struct message *m, const char **detail)
{
	const json_t *reverses = json_object_get(p, "reverses");

	if (m->type != MSG_REVERSE) {
		if (reverses != NULL) {
			*detail = "reverses: only allowed in a reverse";
			return ERR_INVALID_MESSAGE;
		}
		return ERR_OK;
	}
	if (message_get_token(reverses, LIMIT_ID_CHARS, CHARSET_ID,
	    m->reverses) != C_OK) {
		*detail = "reverses: must be 1 to 64 characters of [A-Za-z0-9._:-]";
		return ERR_INVALID_MESSAGE;
	}
	return ERR_OK;
}

enum err
message_validate(const json_t *payload, struct message *out,
    const char **detail)
{
	const char *key;
	json_t *value;
	enum err rc;

	memset(out, 0, sizeof(*out));
	*detail = NULL;
	/* NULL is what jws_parse leaves for valid JSON it cannot represent */
	if (payload == NULL) {
		*detail = "payload: number out of range or \\u0000 in a string";
		return ERR_INVALID_MESSAGE;
	}
	if (!json_is_object(payload)) {
		*detail = "payload: not a JSON object";
		return ERR_INVALID_MESSAGE;
	}
	json_object_foreach((json_t *)payload, key, value) {
		(void)value;
		if (!message_known_field(key)) {
			*detail = "payload: unknown field";
			return ERR_INVALID_MESSAGE;
		}
	}
	rc = message_check_head(payload, out, detail);
	if (rc == ERR_OK)
		rc = message_check_numbers(payload, out, detail);
	if (rc == ERR_OK)
		rc = message_check_amount(payload, out, detail);
	if (rc == ERR_OK)
		rc = message_check_reverses(payload, out, detail);
	if (rc != ERR_OK)
		memset(out, 0, sizeof(*out));
	return rc;
}
