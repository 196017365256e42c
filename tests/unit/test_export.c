/* test_export.c - the pure parts of exports: RFC 4180 quoting, the lots
 * column, hledger account names; and verify_export() on small files built
 * here (no database): an unsealed period of expiry entries, the trailer,
 * and what breaks it. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clearing/receipt.h"
#include "errors.h"
#include "settlement/export.h"
#include "settlement/verify.h"

static char *
csv_of(const char *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ck_assert_ptr_nonnull(f);
	ck_assert_int_ge(export_csv_field(f, s), 0);
	fclose(f);
	return buf;
}

START_TEST(test_csv_quoting)
{
	static const char *const cases[][2] = {
		{ "plain", "plain" },
		{ "", "" },
		{ "a,b", "\"a,b\"" },
		{ "say \"hi\"", "\"say \"\"hi\"\"\"" },
		{ "line1\nline2", "\"line1\nline2\"" },
		{ "cr\r", "\"cr\r\"" },
		{ " lead", "\" lead\"" },
		{ "trail ", "\"trail \"" },
		{ "in side", "in side" },
		{ "eyJhbGciOiJFZERTQSJ9.e30.sig-_", "eyJhbGciOiJFZERTQSJ9.e30.sig-_" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = csv_of(cases[i][0]);
		ck_assert_str_eq(got, cases[i][1]);
		free(got);
	}
	ck_assert_int_eq(export_csv_needs_quotes("x\"y"), 1);
	ck_assert_int_eq(export_csv_needs_quotes("xy"), 0);
	{
		char *got = csv_of(NULL);
		ck_assert_str_eq(got, "");
		free(got);
	}
}
END_TEST

START_TEST(test_lots_text)
{
	char buf[64];

	ck_assert_int_eq(export_lots_text("[{\"lot\":7,\"points\":-20},{\"lot\":3,\"points\":-5}]",
	    buf, sizeof(buf)), C_OK);
	ck_assert_str_eq(buf, "7:-20;3:-5");
	ck_assert_int_eq(export_lots_text("[]", buf, sizeof(buf)), C_OK);
	ck_assert_str_eq(buf, "");
	ck_assert_int_eq(export_lots_text("{}", buf, sizeof(buf)), C_ERR);
	ck_assert_int_eq(export_lots_text("[{\"lot\":123456789,\"points\":1}]", buf, 8), C_ERR);
}
END_TEST

START_TEST(test_hledger_account)
{
	char buf[32];

	ck_assert_int_eq(export_hledger_account("member:M42", buf, sizeof(buf)), C_OK);
	ck_assert_str_eq(buf, "member:M42");
	ck_assert_int_eq(export_hledger_account("member:a;b", buf, sizeof(buf)), C_OK);
	ck_assert_str_eq(buf, "member:a_b");
	ck_assert_int_eq(export_hledger_account("x  y\tz", buf, sizeof(buf)), C_OK);
	ck_assert_str_eq(buf, "x_ y_z");
	ck_assert_int_eq(export_hledger_account("", buf, sizeof(buf)), C_ERR);
	ck_assert_int_eq(export_hledger_account("a-very-long-account-name-indeed", buf, 8), C_ERR);
}
END_TEST

START_TEST(test_format_parse)
{
	enum export_format f;

	ck_assert_int_eq(export_format_parse("jsonl", &f), C_OK);
	ck_assert_int_eq(f, EXPORT_JSONL);
	ck_assert_int_eq(export_format_parse("csv", &f), C_OK);
	ck_assert_int_eq(f, EXPORT_CSV);
	ck_assert_int_eq(export_format_parse("hledger", &f), C_OK);
	ck_assert_int_eq(f, EXPORT_HLEDGER);
	ck_assert_int_eq(export_format_parse("xml", &f), C_ERR);
}
END_TEST

/* a one-period export without messages, its trailer computed here */
static const char *const mini_body[] = {
	"{\"format\":\"pointsd-export\",\"periods\":1,\"record\":\"export\",\"version\":1}",
	"{\"cycle\":\"daily\",\"ends_at\":\"2026-01-02T00:00:00.000000Z\",\"period\":\"2026-01-01\","
	"\"record\":\"period\",\"sealed\":false,\"starts_at\":\"2026-01-01T00:00:00.000000Z\","
	"\"status\":\"open\",\"timezone\":\"UTC\"}",
	"{\"accepted_at\":\"2026-01-01T10:00:00.000000Z\",\"entry\":5,\"kind\":\"expiry\","
	"\"lots\":[{\"lot\":1,\"points\":-30},{\"lot\":2,\"points\":-12}],\"member\":\"M1\","
	"\"period\":\"2026-01-01\",\"points\":42,\"transfers\":[{\"credit\":\"breakage\","
	"\"debit\":\"member:M1\",\"points\":42}]}",
};

/* the file: body lines (with line `replace_at` replaced if >= 0), then
 * the end record over them */
static char *
mini_file(int replace_at, const char *replacement, size_t *len_out)
{
	char *body = NULL, *out = NULL, sha[65];
	size_t blen = 0, olen = 0;
	FILE *f = open_memstream(&body, &blen);

	for (int i = 0; i < 3; i++)
		fprintf(f, "%s\n", i == replace_at ? replacement : mini_body[i]);
	fclose(f);
	sha256_hex(body, blen, sha);
	f = open_memstream(&out, &olen);
	fprintf(f, "%s{\"entries\":1,\"keys\":0,\"periods\":1,\"record\":\"end\",\"sha256\":\"%s\"}\n",
	    body, sha);
	fclose(f);
	free(body);
	*len_out = olen;
	return out;
}

static int
verify_buf(const char *buf, size_t len, char *err, size_t errcap,
    struct verify_report *rep)
{
	FILE *f = fmemopen((void *)buf, len, "r");
	int rc;

	ck_assert_ptr_nonnull(f);
	rc = verify_export(f, rep, err, errcap);
	fclose(f);
	return rc;
}

START_TEST(test_verify_mini)
{
	struct verify_report rep;
	char err[512];
	size_t len;
	char *file = mini_file(-1, NULL, &len);

	ck_assert_int_eq(verify_buf(file, len, err, sizeof(err), &rep), C_OK);
	ck_assert_int_eq(rep.entries, 1);
	ck_assert_int_eq(rep.expiries, 1);
	ck_assert_int_eq(rep.periods, 1);
	ck_assert_int_eq(rep.sealed, 0);
	ck_assert_str_eq(rep.open_periods, "2026-01-01");
	/* every single-byte change is caught */
	for (size_t pos = 0; pos < len; pos++) {
		char *copy = malloc(len);
		memcpy(copy, file, len);
		copy[pos] ^= 0x01;
		ck_assert_msg(verify_buf(copy, len, err, sizeof(err), &rep) == C_ERR,
		    "byte %zu flipped but the file verifies", pos);
		free(copy);
	}
	/* truncation */
	ck_assert_int_eq(verify_buf(file, len - 1, err, sizeof(err), &rep), C_ERR);
	ck_assert_ptr_nonnull(strstr(err, "newline"));
	free(file);
}
END_TEST

START_TEST(test_verify_balance_named)
{
	struct verify_report rep;
	char err[512];
	size_t len;
	/* lot moves not matching the transfers, the trailer recomputed */
	char *file = mini_file(2, "{\"accepted_at\":\"2026-01-01T10:00:00.000000Z\",\"entry\":5,"
	    "\"kind\":\"expiry\",\"lots\":[{\"lot\":1,\"points\":-30}],\"member\":\"M1\","
	    "\"period\":\"2026-01-01\",\"points\":42,\"transfers\":[{\"credit\":\"breakage\","
	    "\"debit\":\"member:M1\",\"points\":42}]}", &len);

	ck_assert_int_eq(verify_buf(file, len, err, sizeof(err), &rep), C_ERR);
	ck_assert_str_eq(err, "line 3: lot moves do not match the transfers");
	free(file);
	/* a transfer to the wrong account */
	file = mini_file(2, "{\"accepted_at\":\"2026-01-01T10:00:00.000000Z\",\"entry\":5,"
	    "\"kind\":\"expiry\",\"lots\":[{\"lot\":1,\"points\":-42}],\"member\":\"M1\","
	    "\"period\":\"2026-01-01\",\"points\":42,\"transfers\":[{\"credit\":\"member:M2\","
	    "\"debit\":\"member:M1\",\"points\":42}]}", &len);
	ck_assert_int_eq(verify_buf(file, len, err, sizeof(err), &rep), C_ERR);
	ck_assert_str_eq(err, "line 3: transfer member:M1 is not between the accounts of its kind");
	free(file);
	/* not canonical: a space */
	file = mini_file(0, "{\"format\":\"pointsd-export\", \"periods\":1,\"record\":\"export\",\"version\":1}",
	    &len);
	ck_assert_int_eq(verify_buf(file, len, err, sizeof(err), &rep), C_ERR);
	ck_assert_str_eq(err, "line 1: not in canonical form (sorted keys, no whitespace)");
	free(file);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("export");
	TCase *tc = tcase_create("export");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_csv_quoting);
	tcase_add_test(tc, test_lots_text);
	tcase_add_test(tc, test_hledger_account);
	tcase_add_test(tc, test_format_parse);
	tcase_add_test(tc, test_verify_mini);
	tcase_add_test(tc, test_verify_balance_named);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
