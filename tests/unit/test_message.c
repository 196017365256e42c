/* test_message.c - the payload schema (protocol.md §2): every rule from
 * tests/cases/message/schema_cases.tsv, message_peek_id, and the values that
 * only reach the schema through jws_parse (30-digit integers, \u0000). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "b64url.h"
#include "clearing/jws.h"
#include "clearing/message.h"
#include "errors.h"

static json_t *
load(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &e);

	ck_assert_msg(j != NULL, "bad test JSON %s: %s", text, e.text);
	return j;
}

START_TEST(test_schema_cases_file)
{
	char *text = test_read_file("tests/cases/message/schema_cases.tsv", NULL);
	char *line, *next;
	int lineno = 0, cases = 0;

	for (line = text; line != NULL && *line != '\0'; line = next) {
		char *f[4], *p = line;
		struct message m;
		const char *detail = NULL;
		json_t *j;
		enum err rc;
		int i;

		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		lineno++;
		if (line[0] == '#' || line[0] == '\0')
			continue;
		for (i = 0; i < 4; i++) {
			f[i] = p;
			p = i < 3 ? strchr(p, '\t') : NULL;
			ck_assert_msg(p != NULL || i == 3, "line %d: fields", lineno);
			if (p != NULL)
				*p++ = '\0';
		}
		j = load(f[2]);
		rc = message_validate(j, &m, &detail);
		if (strcmp(f[0], "ok") == 0) {
			ck_assert_msg(rc == ERR_OK, "line %d (%s): %s", lineno, f[3],
			    detail);
			ck_assert_ptr_null(detail);
		} else {
			ck_assert_msg(rc == ERR_INVALID_MESSAGE,
			    "line %d (%s): accepted", lineno, f[3]);
			ck_assert_ptr_nonnull(detail);
			ck_assert_msg(strcmp(f[1], "-") == 0 ||
			    strncmp(detail, f[1], strlen(f[1])) == 0,
			    "line %d (%s): detail '%s', want '%s...'", lineno, f[3],
			    detail, f[1]);
			ck_assert_int_eq(m.points, 0);
		}
		json_decref(j);
		cases++;
	}
	ck_assert_int_ge(cases, 90);
	free(text);
}
END_TEST

START_TEST(test_fields_copied)
{
	json_t *j = load("{\"v\":1,\"type\":\"redeem\",\"partner\":\"acme\","
	    "\"id\":\"ord:7\",\"member\":\"M-42\",\"points\":1000000000,"
	    "\"iat\":1700000123,\"amount\":\"129.90\",\"currency\":\"EUR\"}");
	struct message m;
	const char *detail;

	ck_assert_int_eq(message_validate(j, &m, &detail), ERR_OK);
	ck_assert_int_eq(m.type, MSG_REDEEM);
	ck_assert_str_eq(m.partner, "acme");
	ck_assert_str_eq(m.id, "ord:7");
	ck_assert_str_eq(m.member, "M-42");
	ck_assert_str_eq(m.reverses, "");
	ck_assert_int_eq(m.points, 1000000000LL);
	ck_assert_int_eq(m.iat, 1700000123LL);
	ck_assert_str_eq(m.amount, "129.90");
	ck_assert_str_eq(m.currency, "EUR");
	json_decref(j);
	j = load("{\"v\":1,\"type\":\"reverse\",\"partner\":\"acme\",\"id\":\"r1\","
	    "\"member\":\"M42\",\"points\":5,\"iat\":0,\"reverses\":\"ord:7\"}");
	ck_assert_int_eq(message_validate(j, &m, &detail), ERR_OK);
	ck_assert_int_eq(m.type, MSG_REVERSE);
	ck_assert_str_eq(m.reverses, "ord:7");
	ck_assert_str_eq(m.amount, "");
	ck_assert_str_eq(m.currency, "");
	json_decref(j);
	ck_assert_str_eq(message_type_name(MSG_ISSUE), "issue");
	ck_assert_str_eq(message_type_name(MSG_REDEEM), "redeem");
	ck_assert_str_eq(message_type_name(MSG_REVERSE), "reverse");
}
END_TEST

START_TEST(test_not_an_object)
{
	struct message m;
	const char *detail = NULL;
	json_t *a = json_array();

	ck_assert_int_eq(message_validate(NULL, &m, &detail), ERR_INVALID_MESSAGE);
	ck_assert_ptr_nonnull(detail);
	ck_assert_int_eq(message_validate(a, &m, &detail), ERR_INVALID_MESSAGE);
	json_decref(a);
}
END_TEST

START_TEST(test_peek_id)
{
	char id[65];
	json_t *j;

	j = load("{\"id\":\"ord:1\"}");
	ck_assert_int_eq(message_peek_id(j, id), C_OK);
	ck_assert_str_eq(id, "ord:1");
	json_decref(j);
	/* the id alone decides: the rest of the payload may fail the schema */
	j = load("{\"id\":\"x\",\"points\":\"lots\",\"junk\":1}");
	ck_assert_int_eq(message_peek_id(j, id), C_OK);
	ck_assert_str_eq(id, "x");
	json_decref(j);
	j = load("{\"id\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}");
	ck_assert_int_eq(message_peek_id(j, id), C_OK);
	ck_assert_uint_eq(strlen(id), 64);
	json_decref(j);
	j = load("{\"id\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}");
	ck_assert_int_eq(message_peek_id(j, id), C_ERR);
	json_decref(j);
	j = load("{\"id\":\"\"}");
	ck_assert_int_eq(message_peek_id(j, id), C_ERR);
	json_decref(j);
	j = load("{\"id\":7}");
	ck_assert_int_eq(message_peek_id(j, id), C_ERR);
	json_decref(j);
	j = load("{\"id\":\"a\\u0000b\"}");
	ck_assert_int_eq(message_peek_id(j, id), C_ERR);
	json_decref(j);
	j = load("{\"id\":\"caf\\u00e9\"}");
	ck_assert_int_eq(message_peek_id(j, id), C_ERR);
	json_decref(j);
	j = load("{\"ID\":\"x\"}");
	ck_assert_int_eq(message_peek_id(j, id), C_ERR);
	ck_assert_str_eq(id, "");
	json_decref(j);
	ck_assert_int_eq(message_peek_id(NULL, id), C_ERR);
}
END_TEST

/* payload text -> jws_parse -> message_validate, as the pipeline does */
static enum err
through_jws(const char *payload, const char **detail)
{
	static const char hdr[] = "{\"alg\":\"EdDSA\",\"kid\":\"k1\"}";
	char h[64], p[1024], tok[1200];
	struct message m;
	struct jws t;
	enum err rc;

	b64url_encode((const unsigned char *)hdr, strlen(hdr), h, sizeof(h));
	b64url_encode((const unsigned char *)payload, strlen(payload), p, sizeof(p));
	snprintf(tok, sizeof(tok), "%s.%s.AAAA", h, p);
	rc = jws_parse(tok, strlen(tok), &t);
	ck_assert_msg(rc == ERR_OK, "%s: %s", payload, err_code(rc));
	if (t.payload_err != ERR_OK) {
		ck_assert_ptr_null(t.payload);
		ck_assert_ptr_nonnull(t.detail);
	}
	rc = message_validate(t.payload, &m, detail);
	jws_free(&t);
	return rc;
}

START_TEST(test_through_jws)
{
	const char *d;

#define P(points) "{\"v\":1,\"type\":\"issue\",\"partner\":\"acme\",\"id\":\"o1\"," \
	"\"member\":\"M42\",\"points\":" points ",\"iat\":1700000000}"
	ck_assert_int_eq(through_jws(P("100"), &d), ERR_OK);
	ck_assert_int_eq(through_jws(P("123456789012345678901234567890"), &d),
	    ERR_INVALID_MESSAGE);
	ck_assert_int_eq(through_jws(P("-123456789012345678901234567890"), &d),
	    ERR_INVALID_MESSAGE);
	ck_assert_int_eq(through_jws(P("9223372036854775808"), &d),
	    ERR_INVALID_MESSAGE);
	ck_assert_int_eq(through_jws(P("9223372036854775807"), &d),
	    ERR_INVALID_MESSAGE);
	ck_assert_int_eq(through_jws(P("1.0"), &d), ERR_INVALID_MESSAGE);
	ck_assert_str_eq(d, "points: must be an integer from 1 to 1000000000");
	ck_assert_int_eq(through_jws(P("1e2"), &d), ERR_INVALID_MESSAGE);
	ck_assert_int_eq(through_jws(P("1E2"), &d), ERR_INVALID_MESSAGE);
	ck_assert_int_eq(through_jws(P("\"1\""), &d), ERR_INVALID_MESSAGE);
	ck_assert_int_eq(through_jws(P("1e400"), &d), ERR_INVALID_MESSAGE);
	ck_assert_int_eq(through_jws(P("true"), &d), ERR_INVALID_MESSAGE);
	ck_assert_int_eq(through_jws(P("null"), &d), ERR_INVALID_MESSAGE);
	ck_assert_int_eq(through_jws(P("[1]"), &d), ERR_INVALID_MESSAGE);
#undef P
	ck_assert_int_eq(through_jws("{\"v\":1,\"type\":\"issue\",\"partner\":\"acme\","
	    "\"id\":\"o\\u00001\",\"member\":\"M42\",\"points\":1,\"iat\":1}", &d),
	    ERR_INVALID_MESSAGE);
	ck_assert_int_eq(through_jws("{\"v\":1,\"type\":\"issue\",\"partner\":\"acme\","
	    "\"id\":\"o1\",\"member\":\"M42\",\"points\":1,\"iat\":1,\"x\\u0000\":1}",
	    &d), ERR_INVALID_MESSAGE);
	ck_assert_int_eq(through_jws("{\"v\":1,\"type\":\"issue\",\"partner\":\"acme\","
	    "\"id\":\"o1\",\"member\":\"M42\",\"points\":1,"
	    "\"iat\":123456789012345678901234567890}", &d), ERR_INVALID_MESSAGE);
	ck_assert_int_eq(through_jws("{\"v\":1,\"type\":\"issue\",\"partner\":\"acme\","
	    "\"id\":\"o1\",\"member\":\"M42\",\"points\":1,\"iat\":1700000000.0}", &d),
	    ERR_INVALID_MESSAGE);
	ck_assert_str_eq(d, "iat: must be a non-negative integer (unix seconds)");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("message");
	TCase *tc = tcase_create("schema");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_schema_cases_file);
	tcase_add_test(tc, test_fields_copied);
	tcase_add_test(tc, test_not_an_object);
	tcase_add_test(tc, test_peek_id);
	tcase_add_test(tc, test_through_jws);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
