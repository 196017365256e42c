/* test_decimal.c - decimal prices into integer micros and minor units back
 * into text: every accepted form, every refusal, overflow at the edges. */
#include <check.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "decimal.h"
#include "errors.h"
#include "pts_limits.h"

START_TEST(test_parse_accepts)
{
	static const struct {
		const char *in;
		long long micros;
	} ok[] = {
		{ "0", 0 }, { "0.0", 0 }, { "1", 1000000 }, { "0.01", 10000 },
		{ "0.0125", 12500 }, { "0.000001", 1 }, { "1.5", 1500000 },
		{ "12.345678", 12345678 }, { "007", 7000000 },
		{ "0000000000000000000000000001.000000", 1000000 },
		{ "999.999999", 999999999 }, { "1000", 1000000000 },
		{ "1000.000000", 1000000000 },
	};
	const char *reason;
	long long v;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		v = -1;
		reason = "unset";
		ck_assert_msg(decimal_parse_micros(ok[i].in, LIMIT_PRICE_MICROS_MAX,
		    &v, &reason) == C_OK, "%s refused: %s", ok[i].in, reason);
		ck_assert_int_eq(v, ok[i].micros);
		ck_assert_ptr_null(reason);
	}
}
END_TEST

START_TEST(test_parse_refuses)
{
	static const struct {
		const char *in;
		const char *reason;
	} bad[] = {
		{ "", "empty value" },
		{ "-1", "negative values are not allowed" },
		{ "-0", "negative values are not allowed" },
		{ "+1", "signs are not allowed" },
		{ "1e2", "exponents are not allowed" },
		{ "1E2", "exponents are not allowed" },
		{ "0.0000001", "more than 6 decimals" },
		{ "1.1234567", "more than 6 decimals" },
		{ "abc", "not a decimal number" },
		{ "0x10", "not a decimal number" },
		{ "1-2", "not a decimal number" },
		{ "1.", "missing digits after the decimal point" },
		{ ".5", "missing digits before the decimal point" },
		{ ".", "missing digits before the decimal point" },
		{ "1.2.3", "more than one decimal point" },
		{ " 1", "spaces are not allowed" },
		{ "1 ", "spaces are not allowed" },
		{ "1\n", "spaces are not allowed" },
		{ "1,5", "a comma is not a decimal point" },
		{ "1001", "above the maximum" },
		{ "1000.000001", "above the maximum" },
		{ "99999999999999999999999999999999", "above the maximum" },
		{ "\xc2\xbd", "not a decimal number" },
		{ "inf", "not a decimal number" },
		{ "NaN", "not a decimal number" },
	};
	const char *reason;
	long long v;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 42;
		reason = NULL;
		ck_assert_msg(decimal_parse_micros(bad[i].in, LIMIT_PRICE_MICROS_MAX,
		    &v, &reason) == C_ERR, "'%s' accepted", bad[i].in);
		ck_assert_ptr_nonnull(reason);
		ck_assert_str_eq(reason, bad[i].reason);
		ck_assert_int_eq(v, 42);  /* untouched on refusal */
	}
	reason = NULL;
	ck_assert_int_eq(decimal_parse_micros(NULL, 1, &v, &reason), C_ERR);
	ck_assert_ptr_nonnull(reason);
}
END_TEST

START_TEST(test_parse_limits)
{
	const char *reason;
	long long v = 0;

	/* the whole 64-bit range, and one micro above it */
	ck_assert_int_eq(decimal_parse_micros("9223372036854.775807", LLONG_MAX,
	    &v, &reason), C_OK);
	ck_assert_int_eq(v, LLONG_MAX);
	ck_assert_int_eq(decimal_parse_micros("9223372036854.775808", LLONG_MAX,
	    &v, &reason), C_ERR);
	ck_assert_int_eq(decimal_parse_micros("9223372036855", LLONG_MAX, &v,
	    &reason), C_ERR);
	ck_assert_int_eq(decimal_parse_micros("18446744073709551617", LLONG_MAX,
	    &v, &reason), C_ERR);
	/* a maximum that is not a whole unit */
	ck_assert_int_eq(decimal_parse_micros("0.000005", 5, &v, &reason), C_OK);
	ck_assert_int_eq(v, 5);
	ck_assert_int_eq(decimal_parse_micros("0.000006", 5, &v, &reason), C_ERR);
	ck_assert_int_eq(decimal_parse_micros("1", 5, &v, &reason), C_ERR);
	ck_assert_int_eq(decimal_parse_micros("0", 0, &v, &reason), C_OK);
	ck_assert_int_eq(v, 0);
	ck_assert_int_eq(decimal_parse_micros("0.000001", 0, &v, &reason), C_ERR);
}
END_TEST

START_TEST(test_format_minor)
{
	static const struct {
		long long minor;
		int exponent;
		const char *out;
	} cases[] = {
		{ 13700, 2, "137.00" }, { -4800, 2, "-48.00" }, { 5, 0, "5" },
		{ 5, 2, "0.05" }, { -5, 2, "-0.05" }, { 0, 2, "0.00" },
		{ 0, 0, "0" }, { -7, 0, "-7" }, { 123456, 4, "12.3456" },
		{ LLONG_MAX, 2, "92233720368547758.07" },
		{ LLONG_MIN, 2, "-92233720368547758.08" },
		{ LLONG_MIN, 0, "-9223372036854775808" },
		{ 1, 18, "0.000000000000000001" },
	};
	char buf[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_int_eq(decimal_format_minor(cases[i].minor,
		    cases[i].exponent, buf, sizeof(buf)), C_OK);
		ck_assert_str_eq(buf, cases[i].out);
	}
	ck_assert_int_eq(decimal_format_minor(1, -1, buf, sizeof(buf)), C_ERR);
	ck_assert_int_eq(decimal_format_minor(1, 19, buf, sizeof(buf)), C_ERR);
}
END_TEST

START_TEST(test_format_capacity)
{
	char buf[8];

	/* "137.00" needs 7 bytes with its NUL */
	ck_assert_int_eq(decimal_format_minor(13700, 2, buf, 7), C_OK);
	ck_assert_str_eq(buf, "137.00");
	ck_assert_int_eq(decimal_format_minor(13700, 2, buf, 6), C_ERR);
	ck_assert_int_eq(decimal_format_minor(-4800, 2, buf, 6), C_ERR);
	ck_assert_int_eq(decimal_format_minor(-4800, 2, buf, 7), C_OK);
	ck_assert_str_eq(buf, "-48.00");
	ck_assert_int_eq(decimal_format_minor(5, 0, buf, 2), C_OK);
	ck_assert_int_eq(decimal_format_minor(5, 0, buf, 1), C_ERR);
	ck_assert_int_eq(decimal_format_minor(5, 0, buf, 0), C_ERR);
}
END_TEST

START_TEST(test_micros_round_trip)
{
	static const long long values[] = { 0, 1, 9, 10, 999999, 1000000,
	    1000001, 10000, 12500, 123456789, 999999999, 1000000000 };
	char buf[32];
	const char *reason;
	long long v;

	ck_assert_int_eq(decimal_format_micros(10000, buf, sizeof(buf)), C_OK);
	ck_assert_str_eq(buf, "0.010000");
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		ck_assert_int_eq(decimal_format_micros(values[i], buf, sizeof(buf)),
		    C_OK);
		ck_assert_int_eq(decimal_parse_micros(buf, LIMIT_PRICE_MICROS_MAX,
		    &v, &reason), C_OK);
		ck_assert_int_eq(v, values[i]);
	}
	/* every micro-unit of the first unit and around the maximum */
	for (long long m = 0; m <= 1000000; m += 7) {
		decimal_format_micros(m, buf, sizeof(buf));
		ck_assert_int_eq(decimal_parse_micros(buf, LIMIT_PRICE_MICROS_MAX,
		    &v, &reason), C_OK);
		ck_assert_int_eq(v, m);
	}
	for (long long m = LIMIT_PRICE_MICROS_MAX - 100;
	    m <= LIMIT_PRICE_MICROS_MAX + 100; m++) {
		int rc;
		decimal_format_micros(m, buf, sizeof(buf));
		rc = decimal_parse_micros(buf, LIMIT_PRICE_MICROS_MAX, &v, &reason);
		ck_assert_int_eq(rc, m <= LIMIT_PRICE_MICROS_MAX ? C_OK : C_ERR);
	}
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("decimal");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_parse_accepts);
	tcase_add_test(tc, test_parse_refuses);
	tcase_add_test(tc, test_parse_limits);
	tcase_add_test(tc, test_format_minor);
	tcase_add_test(tc, test_format_capacity);
	tcase_add_test(tc, test_micros_round_trip);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
