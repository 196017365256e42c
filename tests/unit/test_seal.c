/* test_seal.c - the pure parts of the period seal: the SHA-256 chain step
 * (vectors computed with sha256sum), hex round trips, the payload bytes. */
#include <check.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "errors.h"
#include "settlement/seal.h"

START_TEST(test_chain_vectors)
{
	/* h1 = sha256(32 zero bytes || "abc\n"), h2 = sha256(h1 || "{\"a\":1}\n") */
	unsigned char h[SEAL_HASH_BYTES];
	char hex[SEAL_HEX_CHARS];

	memset(h, 0, sizeof(h));
	ck_assert_int_eq(seal_chain_step(h, "abc", 3), C_OK);
	seal_hex(h, hex);
	ck_assert_str_eq(hex, "d65c9ff11099e630343039dbeb1ebd66b8e5577750e8c13f53f95b8ce8745bca");
	ck_assert_int_eq(seal_chain_step(h, "{\"a\":1}", 7), C_OK);
	seal_hex(h, hex);
	ck_assert_str_eq(hex, "2f0d05c66f836207d82fc6d5bb45610d4b27a64a957dc9fc74df22a801c2a7e3");
}
END_TEST

START_TEST(test_hex_round_trip)
{
	unsigned char h[SEAL_HASH_BYTES];
	char hex[SEAL_HEX_CHARS];
	const char *in = "2f0d05c66f836207d82fc6d5bb45610d4b27a64a957dc9fc74df22a801c2a7e3";

	ck_assert_int_eq(seal_unhex(in, h), C_OK);
	seal_hex(h, hex);
	ck_assert_str_eq(hex, in);
	ck_assert_int_eq(seal_unhex("2F0D05c66f836207d82fc6d5bb45610d4b27a64a957dc9fc74df22a801c2a7e3", h), C_ERR);
	ck_assert_int_eq(seal_unhex("abcd", h), C_ERR);
	ck_assert_int_eq(seal_unhex("zz0d05c66f836207d82fc6d5bb45610d4b27a64a957dc9fc74df22a801c2a7e3", h), C_ERR);
}
END_TEST

START_TEST(test_payload_bytes)
{
	struct seal_fields f;
	char *p;

	memset(&f, 0, sizeof(f));
	snprintf(f.period, sizeof(f.period), "%s", "2026-11-22");
	memset(f.chain, 'a', 64);
	memset(f.prev, '0', 64);
	memset(f.batch_sha256, 'b', 64);
	p = seal_payload(&f);
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(p, "{\"batch_sha256\":\"" "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	    "\",\"chain\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "\",\"count\":0,\"period\":\"2026-11-22\",\"prev\":\""
	    "0000000000000000000000000000000000000000000000000000000000000000\"}");
	free(p);
	f.count = 2;
	f.first_entry = 7;
	f.last_entry = 9;
	p = seal_payload(&f);
	ck_assert_ptr_nonnull(strstr(p, "\"count\":2,\"first_entry\":7,\"last_entry\":9,\"period\""));
	free(p);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("seal");
	TCase *tc = tcase_create("seal");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_chain_vectors);
	tcase_add_test(tc, test_hex_round_trip);
	tcase_add_test(tc, test_payload_bytes);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
