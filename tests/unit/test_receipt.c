/* test_receipt.c - receipts sign and verify through jws_parse_policy and
 * jws_verify; the RFC 8037 thumbprint; JWKs; loading the receipt key. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "b64url.h"
#include "clearing/jws.h"
#include "clearing/receipt.h"
#include "errors.h"

static const struct jws_policy receipt_policy = { JWS_TYP_RECEIPT, 0 };

static json_t *
read_json(const char *path)
{
	json_error_t e;
	json_t *j = json_load_file(path, 0, &e);

	ck_assert_msg(j != NULL, "%s: %s", path, e.text);
	return j;
}

static EVP_PKEY *
rfc8037_key(int with_private)
{
	json_t *v = read_json("tests/cases/vectors/rfc/rfc8037-a4.json");
	json_t *jwk = json_object_get(v, "privateJwk");
	const char *b = json_string_value(json_object_get(jwk,
	    with_private ? "d" : "x"));
	unsigned char raw[32];
	size_t n;
	EVP_PKEY *k;

	ck_assert_int_eq(b64url_decode(b, strlen(b), raw, sizeof(raw), &n), C_OK);
	ck_assert_uint_eq(n, 32);
	k = with_private ?
	    EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, raw, n) :
	    EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, n);
	ck_assert_ptr_nonnull(k);
	json_decref(v);
	return k;
}

static const struct receipt_fields sample = {
	.partner = "acme", .id = "ord-1001", .type = "issue", .member = "M42",
	.points = 1200, .balance = 5400, .entry = 123456,
	.accepted_at = "2026-11-22T10:00:00.123456Z", .period = "2026-11-22",
	.sha256_hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
};

START_TEST(test_sha256_hex)
{
	char out[65];

	sha256_hex("abc", 3, out);
	ck_assert_str_eq(out,
	    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	sha256_hex("", 0, out);
	ck_assert_str_eq(out,
	    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}
END_TEST

START_TEST(test_rfc8037_thumbprint)
{
	EVP_PKEY *pub = rfc8037_key(0), *priv = rfc8037_key(1);
	char kid[44];

	ck_assert_int_eq(receipt_key_kid(pub, kid), C_OK);
	ck_assert_str_eq(kid, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
	ck_assert_int_eq(receipt_key_kid(priv, kid), C_OK);
	ck_assert_str_eq(kid, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
	EVP_PKEY_free(pub);
	EVP_PKEY_free(priv);
}
END_TEST

START_TEST(test_sign_and_verify)
{
	EVP_PKEY *priv = rfc8037_key(1), *pub = rfc8037_key(0);
	EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	char kid[44], *r, *r2, *dot1, *dot2;
	unsigned char buf[1024];
	size_t n;
	struct jws t;
	static const char want_payload[] =
	    "{\"accepted_at\":\"2026-11-22T10:00:00.123456Z\",\"balance\":5400,"
	    "\"entry\":123456,\"id\":\"ord-1001\",\"member\":\"M42\","
	    "\"partner\":\"acme\",\"period\":\"2026-11-22\",\"points\":1200,"
	    "\"sha256\":\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\","
	    "\"type\":\"issue\"}";
	static const char want_header[] =
	    "{\"alg\":\"EdDSA\",\"kid\":\"kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k\","
	    "\"typ\":\"points-receipt+jwt\"}";

	ck_assert_int_eq(receipt_key_kid(priv, kid), C_OK);
	r = receipt_sign(priv, kid, &sample);
	ck_assert_ptr_nonnull(r);
	/* exact bytes of header and payload */
	dot1 = strchr(r, '.');
	dot2 = strrchr(r, '.');
	ck_assert_int_eq(b64url_decode(r, (size_t)(dot1 - r), buf, sizeof(buf), &n), C_OK);
	ck_assert_uint_eq(n, strlen(want_header));
	ck_assert_mem_eq(buf, want_header, n);
	ck_assert_int_eq(b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), buf,
	    sizeof(buf), &n), C_OK);
	ck_assert_uint_eq(n, strlen(want_payload));
	ck_assert_mem_eq(buf, want_payload, n);
	/* Ed25519 is deterministic: the same fields give the same receipt */
	r2 = receipt_sign(priv, kid, &sample);
	ck_assert_str_eq(r, r2);
	free(r2);
	/* verifies under the public key with the receipt typ */
	ck_assert_int_eq(jws_parse_policy(r, strlen(r), &receipt_policy, &t), ERR_OK);
	ck_assert_int_eq(t.alg, JWS_ALG_EDDSA);
	ck_assert_str_eq(t.kid, kid);
	ck_assert_int_eq(json_object_size(t.payload), 10);
	ck_assert_int_eq(json_integer_value(json_object_get(t.payload, "entry")), 123456);
	ck_assert_int_eq(jws_verify(&t, pub), ERR_OK);
	ck_assert_int_eq(jws_verify(&t, other), ERR_INVALID_SIGNATURE);
	jws_free(&t);
	/* a receipt is not a partner message */
	ck_assert_int_eq(jws_parse(r, strlen(r), &t), ERR_MALFORMED_JWS);
	ck_assert_str_eq(t.detail, "typ: must be points+jwt");
	jws_free(&t);
	free(r);
	EVP_PKEY_free(priv);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(other);
}
END_TEST

START_TEST(test_sign_refuses)
{
	EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	struct receipt_fields f = sample;
	char kid[44];

	ck_assert_ptr_null(receipt_sign(ec, "k", &sample));
	ck_assert_int_eq(receipt_key_kid(ec, kid), C_ERR);
	ck_assert_ptr_null(receipt_key_jwk(ec));
	f.member = NULL;
	ck_assert_ptr_null(receipt_sign(ed, "k", &f));
	EVP_PKEY_free(ec);
	EVP_PKEY_free(ed);
}
END_TEST

START_TEST(test_jwks)
{
	EVP_PKEY *pub = rfc8037_key(0);
	json_t *v = read_json("tests/cases/vectors/rfc/rfc7515-a3.json");
	json_t *ecjwk = json_object_get(v, "publicJwk");
	json_t *jwk;
	EVP_PKEY *ec;
	BIO *b;
	static const char ec_pem[] =
	    "-----BEGIN PUBLIC KEY-----\n"
	    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEf83OJ3D2xF1Bg8vub9tLe1gHMzV7\n"
	    "6e8Tus9uPHvRVEXH8UTNG72bfocs3+257rn0s2ldbqkLJK2KRiMohYjlrQ==\n"
	    "-----END PUBLIC KEY-----\n";

	jwk = receipt_key_jwk(pub);
	ck_assert_ptr_nonnull(jwk);
	ck_assert_int_eq(json_object_size(jwk), 6);
	ck_assert_str_eq(json_string_value(json_object_get(jwk, "kty")), "OKP");
	ck_assert_str_eq(json_string_value(json_object_get(jwk, "crv")), "Ed25519");
	ck_assert_str_eq(json_string_value(json_object_get(jwk, "x")),
	    "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
	ck_assert_str_eq(json_string_value(json_object_get(jwk, "kid")),
	    "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
	ck_assert_str_eq(json_string_value(json_object_get(jwk, "alg")), "EdDSA");
	ck_assert_str_eq(json_string_value(json_object_get(jwk, "use")), "sig");
	json_decref(jwk);

	b = BIO_new_mem_buf(ec_pem, -1);
	ec = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
	ck_assert_ptr_nonnull(ec);
	jwk = jwk_from_public_pkey(ec, "acme-1");
	ck_assert_ptr_nonnull(jwk);
	ck_assert_int_eq(json_object_size(jwk), 6);
	ck_assert_str_eq(json_string_value(json_object_get(jwk, "kty")), "EC");
	ck_assert_str_eq(json_string_value(json_object_get(jwk, "crv")), "P-256");
	ck_assert_str_eq(json_string_value(json_object_get(jwk, "x")),
	    json_string_value(json_object_get(ecjwk, "x")));
	ck_assert_str_eq(json_string_value(json_object_get(jwk, "y")),
	    json_string_value(json_object_get(ecjwk, "y")));
	ck_assert_str_eq(json_string_value(json_object_get(jwk, "kid")), "acme-1");
	ck_assert_str_eq(json_string_value(json_object_get(jwk, "alg")), "ES256");
	json_decref(jwk);
	jwk = jwk_from_public_pkey(ec, NULL);
	ck_assert_ptr_null(json_object_get(jwk, "kid"));
	json_decref(jwk);
	jwk = jwk_from_public_pkey(pub, "p1");
	ck_assert_int_eq(json_object_size(jwk), 5);
	json_decref(jwk);
	BIO_free(b);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(pub);
	json_decref(v);
}
END_TEST

static void
write_key_file(char *path, EVP_PKEY *k, const char *pass)
{
	int fd = mkstemp(path);
	FILE *f;

	ck_assert_int_ge(fd, 0);
	f = fdopen(fd, "w");
	ck_assert_ptr_nonnull(f);
	if (k != NULL)
		ck_assert_int_eq(PEM_write_PrivateKey(f, k,
		    pass ? EVP_aes_256_cbc() : NULL, NULL, 0, NULL,
		    (void *)pass), 1);
	else
		fputs("-----BEGIN PRIVATE KEY-----\nnot base64\n"
		    "-----END PRIVATE KEY-----\n", f);
	fclose(f);
}

START_TEST(test_key_load)
{
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	char p1[] = "/tmp/pts_receipt_ed_XXXXXX", p2[] = "/tmp/pts_receipt_ec_XXXXXX";
	char p3[] = "/tmp/pts_receipt_enc_XXXXXX", p4[] = "/tmp/pts_receipt_bad_XXXXXX";
	EVP_PKEY *k;
	char *r;

	write_key_file(p1, ed, NULL);
	write_key_file(p2, ec, NULL);
	write_key_file(p3, ed, "secret");
	write_key_file(p4, NULL, NULL);
	k = receipt_key_load(p1);
	ck_assert_ptr_nonnull(k);
	ck_assert_int_eq(EVP_PKEY_eq(k, ed), 1);
	r = receipt_sign(k, "kid-1", &sample);
	ck_assert_ptr_nonnull(r);
	free(r);
	EVP_PKEY_free(k);
	ck_assert_ptr_null(receipt_key_load(p2));   /* not Ed25519 */
	ck_assert_ptr_null(receipt_key_load(p3));   /* encrypted: never prompts */
	ck_assert_ptr_null(receipt_key_load(p4));   /* garbage */
	ck_assert_ptr_null(receipt_key_load("/nonexistent/receipt.pem"));
	unlink(p1);
	unlink(p2);
	unlink(p3);
	unlink(p4);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(ec);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("receipt");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_sha256_hex);
	tcase_add_test(tc, test_rfc8037_thumbprint);
	tcase_add_test(tc, test_sign_and_verify);
	tcase_add_test(tc, test_sign_refuses);
	tcase_add_test(tc, test_jwks);
	tcase_add_test(tc, test_key_load);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
