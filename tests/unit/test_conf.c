/* test_conf.c - configuration parsing: defaults, bounds, errors with line
 * numbers, and that docs/operations.md documents every key with its default. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "errors.h"

START_TEST(test_defaults)
{
	struct conf c;

	conf_defaults(&c);
	ck_assert_str_eq(c.listen, "127.0.0.1:8443");
	ck_assert_int_eq(c.iat_window_s, 300);
	ck_assert_int_eq(c.max_connections, 10000);
	ck_assert_int_eq(c.partner_inflight_max, 1000);
	ck_assert_int_eq(c.request_deadline_ms, 30000);
	ck_assert_int_eq(c.db_timeout_ms, 2000);
	ck_assert_int_eq(c.unsafe_no_durability, 0);
}
END_TEST

START_TEST(test_parse_text)
{
	struct conf c;
	char err[256];

	conf_defaults(&c);
	ck_assert_int_eq(conf_parse_text(&c,
	    "# comment\n\n listen = 127.0.0.1:9999 \r\ncommit_max_messages=1\n"
	    "db = host=/tmp port=5 dbname=points\n", err, sizeof(err)), C_OK);
	ck_assert_str_eq(c.listen, "127.0.0.1:9999");
	ck_assert_int_eq(c.commit_max_messages, 1);
	ck_assert_str_eq(c.db, "host=/tmp port=5 dbname=points");
}
END_TEST

START_TEST(test_errors)
{
	struct conf c;
	char err[256];

	conf_defaults(&c);
	ck_assert_int_eq(conf_parse_text(&c, "listen = x\nbogus = 1\n", err, sizeof(err)), C_ERR);
	ck_assert_str_eq(err, "line 2: unknown key: bogus");
	ck_assert_int_eq(conf_parse_text(&c, "threads = 2x\n", err, sizeof(err)), C_ERR);
	ck_assert_str_eq(err, "line 1: threads: not an integer: 2x");
	ck_assert_int_eq(conf_parse_text(&c, "commit_max_messages = 0\n", err, sizeof(err)), C_ERR);
	ck_assert_str_eq(err, "line 1: commit_max_messages: 0 out of range 1..10000");
	ck_assert_int_eq(conf_parse_text(&c, "iat_window_s = 99999999999999999999\n", err, sizeof(err)), C_ERR);
	ck_assert_int_eq(conf_parse_text(&c, "no equals sign\n", err, sizeof(err)), C_ERR);
	ck_assert_str_eq(err, "line 1: expected key = value");
	ck_assert_int_eq(conf_set(&c, "iat_window_s", "", err, sizeof(err)), C_ERR);
	ck_assert_int_eq(conf_set(&c, "iat_window_s", "-5", err, sizeof(err)), C_ERR);
}
END_TEST

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	if (fread(buf, 1, (size_t)n, f) != (size_t)n)
		buf[0] = '\0';
	fclose(f);
	return buf;
}

START_TEST(test_documented)
{
	char *doc = slurp("docs/operations.md");
	char want[512];

	ck_assert_ptr_nonnull(doc);
	for (size_t i = 0; i < conf_keys_count; i++) {
		snprintf(want, sizeof(want), "| `%s` | `%s` |", conf_keys[i].name, conf_keys[i].def);
		ck_assert_msg(strstr(doc, want) != NULL, "docs/operations.md lacks the row %s", want);
	}
	free(doc);
}
END_TEST

START_TEST(test_error_table_documented)
{
	char *doc = slurp("docs/protocol.md");
	char want[256];

	ck_assert_ptr_nonnull(doc);
	for (int e = ERR_MALFORMED_JWS; e < ERR__COUNT; e++) {
		if (e == ERR_INTERNAL)
			continue;
		snprintf(want, sizeof(want), "| `%s` | %d |", err_code((enum err)e),
		    err_http_status((enum err)e));
		ck_assert_msg(strstr(doc, want) != NULL, "docs/protocol.md lacks the row %s", want);
	}
	free(doc);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("conf");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_parse_text);
	tcase_add_test(tc, test_errors);
	tcase_add_test(tc, test_documented);
	tcase_add_test(tc, test_error_table_documented);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
