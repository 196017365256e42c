/* test_b64url.c - strict base64url: RFC 4648 vectors, refusals of padding,
 * foreign characters, impossible lengths and non-canonical trailing bits. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "b64url.h"
#include "errors.h"

static int
dec(const char *in, unsigned char *out, size_t cap, size_t *n)
{
	return b64url_decode(in, strlen(in), out, cap, n);
}

START_TEST(test_rfc4648_vectors)
{
	/* RFC 4648 §10, without padding */
	static const char *const plain[] = { "", "f", "fo", "foo", "foob",
	    "fooba", "foobar" };
	static const char *const enc[] = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg",
	    "Zm9vYmE", "Zm9vYmFy" };
	unsigned char buf[16];
	char out[16];
	size_t i, n;

	for (i = 0; i < 7; i++) {
		ck_assert_uint_eq(b64url_encoded_len(strlen(plain[i])),
		    strlen(enc[i]));
		ck_assert_uint_eq(b64url_encode((const unsigned char *)plain[i],
		    strlen(plain[i]), out, sizeof(out)), strlen(enc[i]));
		ck_assert_str_eq(out, enc[i]);
		ck_assert_int_eq(dec(enc[i], buf, sizeof(buf), &n), C_OK);
		ck_assert_uint_eq(n, strlen(plain[i]));
		ck_assert_mem_eq(buf, plain[i], n);
		ck_assert_uint_ge(b64url_decoded_max(strlen(enc[i])), n);
	}
}
END_TEST

START_TEST(test_url_alphabet)
{
	static const unsigned char bytes[] = { 0xfb, 0xff, 0xbf };
	unsigned char buf[8];
	char out[8];
	size_t n;

	b64url_encode(bytes, sizeof(bytes), out, sizeof(out));
	ck_assert_str_eq(out, "-_-_");
	ck_assert_int_eq(dec("-_-_", buf, sizeof(buf), &n), C_OK);
	ck_assert_mem_eq(buf, bytes, 3);
	/* the standard alphabet's + and / are refused */
	ck_assert_int_eq(dec("+/+/", buf, sizeof(buf), &n), C_ERR);
	ck_assert_int_eq(dec("ab+c", buf, sizeof(buf), &n), C_ERR);
	ck_assert_int_eq(dec("ab/c", buf, sizeof(buf), &n), C_ERR);
}
END_TEST

START_TEST(test_refuse_padding_and_junk)
{
	static const char *const bad[] = {
		"Zg==", "Zg=", "Zm8=", "Zm9v====", "=", "==", "Zm9v=",
		"Zm 9v", " Zm9v", "Zm9v ", "Zm9v\n", "Zm9v\r\n", "Zm\t9v",
		"Zm9v.", "Zm9*", "Zm9\"", "Zm9\\", "Zm\x80v", "Zm\xffv",
	};
	unsigned char buf[16];
	size_t i, n;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(dec(bad[i], buf, sizeof(buf), &n) == C_ERR,
		    "accepted '%s'", bad[i]);
	/* an embedded NUL is a foreign byte too */
	ck_assert_int_eq(b64url_decode("Zm\0v", 4, buf, sizeof(buf), &n), C_ERR);
}
END_TEST

START_TEST(test_refuse_bad_length)
{
	unsigned char buf[16];
	size_t n;

	ck_assert_int_eq(dec("Z", buf, sizeof(buf), &n), C_ERR);
	ck_assert_int_eq(dec("Zm9vY", buf, sizeof(buf), &n), C_ERR);
	ck_assert_int_eq(dec("Zm9vYmFyZ", buf, sizeof(buf), &n), C_ERR);
}
END_TEST

START_TEST(test_refuse_non_canonical)
{
	unsigned char buf[16];
	size_t n;

	/* "f" is Zg; Zh..Zv differ only in the 4 unused bits */
	ck_assert_int_eq(dec("Zg", buf, sizeof(buf), &n), C_OK);
	ck_assert_int_eq(dec("Zh", buf, sizeof(buf), &n), C_ERR);
	ck_assert_int_eq(dec("Zv", buf, sizeof(buf), &n), C_ERR);
	ck_assert_int_eq(dec("Z_", buf, sizeof(buf), &n), C_ERR);
	/* "fo" is Zm8; Zm9 has the 2 unused bits set */
	ck_assert_int_eq(dec("Zm8", buf, sizeof(buf), &n), C_OK);
	ck_assert_int_eq(dec("Zm9", buf, sizeof(buf), &n), C_ERR);
	ck_assert_int_eq(dec("Zm-", buf, sizeof(buf), &n), C_ERR);
	/* the RFC 8037 signature ends in 'g': canonical for a 64-byte value */
	ck_assert_int_eq(dec("AA", buf, sizeof(buf), &n), C_OK);
	ck_assert_int_eq(dec("AB", buf, sizeof(buf), &n), C_ERR);
}
END_TEST

START_TEST(test_capacity)
{
	unsigned char buf[8];
	size_t n;

	ck_assert_int_eq(b64url_decode("Zm9vYmFy", 8, buf, 5, &n), C_ERR);
	ck_assert_int_eq(b64url_decode("Zm9vYmFy", 8, buf, 6, &n), C_OK);
	ck_assert_uint_eq(n, 6);
	ck_assert_uint_eq(b64url_decoded_max(0), 0);
	ck_assert_uint_eq(b64url_decoded_max(2), 1);
	ck_assert_uint_eq(b64url_decoded_max(3), 2);
	ck_assert_uint_eq(b64url_decoded_max(4), 3);
	ck_assert_uint_eq(b64url_decoded_max(86), 64);
	ck_assert_uint_eq(b64url_encoded_len(64), 86);
	ck_assert_uint_eq(b64url_encoded_len(32), 43);
}
END_TEST

/* every byte string of lengths 0..300 round-trips, and every single-char
 * change of a 3-char tail is either refused or decodes differently */
START_TEST(test_round_trip)
{
	unsigned char in[300], back[300];
	char enc[401];
	size_t len, n, i;

	for (i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i * 151 + 7);
	for (len = 0; len <= sizeof(in); len++) {
		size_t e = b64url_encode(in, len, enc, sizeof(enc));

		ck_assert_uint_eq(e, b64url_encoded_len(len));
		ck_assert_int_eq(b64url_decode(enc, e, back, sizeof(back), &n), C_OK);
		ck_assert_uint_eq(n, len);
		ck_assert(len == 0 || memcmp(in, back, len) == 0);
	}
}
END_TEST

/* exhaustive over all 2- and 3-char strings: the decoder accepts exactly the
 * encoder's outputs */
START_TEST(test_exhaustive_short)
{
	static const char alpha[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char buf[4];
	char s[4], again[8];
	size_t n, accepted = 0;
	int a, b, c;

	for (a = 0; a < 64; a++) {
		for (b = 0; b < 64; b++) {
			s[0] = alpha[a];
			s[1] = alpha[b];
			if (b64url_decode(s, 2, buf, sizeof(buf), &n) == C_OK) {
				accepted++;
				b64url_encode(buf, n, again, sizeof(again));
				ck_assert_mem_eq(again, s, 2);
			}
			for (c = 0; c < 64; c++) {
				s[2] = alpha[c];
				if (b64url_decode(s, 3, buf, sizeof(buf), &n) != C_OK)
					continue;
				accepted++;
				b64url_encode(buf, n, again, sizeof(again));
				ck_assert_mem_eq(again, s, 3);
			}
		}
	}
	ck_assert_uint_eq(accepted, 256 + 65536);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("b64url");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_rfc4648_vectors);
	tcase_add_test(tc, test_url_alphabet);
	tcase_add_test(tc, test_refuse_padding_and_junk);
	tcase_add_test(tc, test_refuse_bad_length);
	tcase_add_test(tc, test_refuse_non_canonical);
	tcase_add_test(tc, test_capacity);
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_exhaustive_short);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
