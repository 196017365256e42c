/* test_certfp.c - certificate fingerprints, CN, subject and expiry against a
 * fixture whose fingerprint the openssl CLI computed (tests/cases/certs/),
 * plus certificates built here with awkward subjects. Run from the repo root. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "errors.h"
#include "partners/certfp.h"

#define FIXTURE_DIR "tests/cases/certs/"
#define FIXTURE_NOT_AFTER_UNIX 4949041750LL  /* Oct 30 13:49:10 2126 GMT */

static void
read_expected_fp(char out[CERTFP_HEX_CHARS + 1])
{
	FILE *f = fopen(FIXTURE_DIR "certfp-acme.sha256", "r");

	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(out, CERTFP_HEX_CHARS + 1, f));
	fclose(f);
	ck_assert_uint_eq(strlen(out), CERTFP_HEX_CHARS);
}

/* a self-signed Ed25519 certificate whose subject has cn_len bytes of cn */
static X509 *
make_cert(const char *cn, int cn_len)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	X509 *x = X509_new();
	X509_NAME *name;

	ck_assert_ptr_nonnull(key);
	ck_assert_ptr_nonnull(x);
	ck_assert_int_eq(X509_set_version(x, 2), 1);
	ck_assert_int_eq(ASN1_INTEGER_set(X509_get_serialNumber(x), 7), 1);
	ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notBefore(x), 0));
	ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	name = X509_get_subject_name(x);
	ck_assert_int_eq(X509_NAME_add_entry_by_NID(name, NID_organizationName,
	    MBSTRING_UTF8, (const unsigned char *)"t", -1, -1, 0), 1);
	ck_assert_int_eq(X509_NAME_add_entry_by_NID(name, NID_commonName,
	    MBSTRING_UTF8, (const unsigned char *)cn, cn_len, -1, 0), 1);
	ck_assert_int_eq(X509_set_issuer_name(x, name), 1);
	ck_assert_int_eq(X509_set_pubkey(x, key), 1);
	ck_assert_int_gt(X509_sign(x, key, NULL), 0);
	EVP_PKEY_free(key);
	return x;
}

START_TEST(test_fixture_matches_openssl_cli)
{
	char want[CERTFP_HEX_CHARS + 2], fp[CERTFP_HEX_CHARS + 1], cn[65];
	const char *reason = NULL;
	long long not_after = 0;

	read_expected_fp(want);
	ck_assert_int_eq(certfp_from_pem_file(FIXTURE_DIR "certfp-acme.crt", fp,
	    cn, sizeof(cn), &not_after, &reason), C_OK);
	ck_assert_str_eq(fp, want);
	ck_assert_str_eq(cn, "acme");
	ck_assert_int_eq(not_after, FIXTURE_NOT_AFTER_UNIX);
}
END_TEST

START_TEST(test_fixture_pieces)
{
	char fp[CERTFP_HEX_CHARS + 1], subject[256], cn[8];
	unsigned char *der = NULL, md[32], hex_md[CERTFP_HEX_CHARS + 1];
	const char *reason = NULL;
	unsigned int md_len = 0;
	X509 *cert;
	int der_len;

	cert = certfp_read_pem_file(FIXTURE_DIR "certfp-acme.crt", &reason);
	ck_assert_ptr_nonnull(cert);
	ck_assert_int_eq(certfp_sha256_hex(cert, fp), C_OK);
	/* the same as hashing the DER ourselves */
	der_len = i2d_X509(cert, &der);
	ck_assert_int_gt(der_len, 0);
	ck_assert_int_eq(EVP_Digest(der, (size_t)der_len, md, &md_len,
	    EVP_sha256(), NULL), 1);
	for (unsigned int i = 0; i < md_len; i++)
		snprintf((char *)hex_md + 2 * i, 3, "%02x", md[i]);
	ck_assert_str_eq(fp, (char *)hex_md);
	ck_assert_int_eq(certfp_subject(cert, subject, sizeof(subject)), C_OK);
	ck_assert_str_eq(subject, "CN=acme,O=Test Coalition,C=CN");
	ck_assert_int_eq(certfp_subject(cert, subject, 10), C_ERR);
	/* "acme" needs 5 bytes */
	ck_assert_int_eq(certfp_cn(cert, cn, 5), C_OK);
	ck_assert_str_eq(cn, "acme");
	ck_assert_int_eq(certfp_cn(cert, cn, 4), C_ERR);
	OPENSSL_free(der);
	X509_free(cert);
}
END_TEST

START_TEST(test_refused_files)
{
	char fp[CERTFP_HEX_CHARS + 1], cn[65];
	const char *reason = NULL;
	long long not_after = 0;

	ck_assert_int_eq(certfp_from_pem_file(FIXTURE_DIR "no-such.crt", fp, cn,
	    sizeof(cn), &not_after, &reason), C_ERR);
	ck_assert_str_eq(reason, "cannot read the certificate file");
	reason = NULL;
	ck_assert_int_eq(certfp_from_pem_file(FIXTURE_DIR "README", fp, cn,
	    sizeof(cn), &not_after, &reason), C_ERR);
	ck_assert_str_eq(reason, "not a PEM X.509 certificate");
	reason = NULL;
	ck_assert_int_eq(certfp_from_pem_file(FIXTURE_DIR "certfp-two-cn.crt", fp,
	    cn, sizeof(cn), &not_after, &reason), C_ERR);
	ck_assert_ptr_nonnull(reason);
	reason = NULL;
	ck_assert_int_eq(certfp_from_pem_file(FIXTURE_DIR "certfp-no-cn.crt", fp,
	    cn, sizeof(cn), &not_after, &reason), C_ERR);
	ck_assert_ptr_nonnull(reason);
	ck_assert_int_eq(certfp_sha256_hex(NULL, fp), C_ERR);
	ck_assert_int_eq(certfp_cn(NULL, cn, sizeof(cn)), C_ERR);
}
END_TEST

START_TEST(test_built_subjects)
{
	char cn[128], fp1[CERTFP_HEX_CHARS + 1], fp2[CERTFP_HEX_CHARS + 1];
	X509 *a = make_cert("globex", -1);
	X509 *b = make_cert("acme\0evil", 9);
	X509 *c = make_cert("caf\xc3\xa9", -1);

	ck_assert_int_eq(certfp_cn(a, cn, sizeof(cn)), C_OK);
	ck_assert_str_eq(cn, "globex");
	/* an embedded NUL must not shorten the identity to "acme" */
	ck_assert_int_eq(certfp_cn(b, cn, sizeof(cn)), C_ERR);
	ck_assert_int_eq(certfp_cn(c, cn, sizeof(cn)), C_OK);
	ck_assert_str_eq(cn, "caf\xc3\xa9");
	/* two certificates, two fingerprints, stable across calls */
	ck_assert_int_eq(certfp_sha256_hex(a, fp1), C_OK);
	ck_assert_int_eq(certfp_sha256_hex(b, fp2), C_OK);
	ck_assert_str_ne(fp1, fp2);
	ck_assert_int_eq(certfp_sha256_hex(a, fp2), C_OK);
	ck_assert_str_eq(fp1, fp2);
	X509_free(a);
	X509_free(b);
	X509_free(c);
}
END_TEST

START_TEST(test_normalize_hex)
{
	char out[CERTFP_HEX_CHARS + 1], want[CERTFP_HEX_CHARS + 2];
	char colon[3 * 32], upper[CERTFP_HEX_CHARS + 2];
	size_t n = 0;

	read_expected_fp(want);
	ck_assert_int_eq(certfp_normalize_hex(want, out), C_OK);
	ck_assert_str_eq(out, want);
	/* openssl's form: upper case with colons */
	for (size_t i = 0; i < CERTFP_HEX_CHARS; i += 2) {
		if (i > 0)
			colon[n++] = ':';
		colon[n++] = (char)(want[i] >= 'a' ? want[i] - 32 : want[i]);
		colon[n++] = (char)(want[i + 1] >= 'a' ? want[i + 1] - 32 :
		    want[i + 1]);
	}
	colon[n] = '\0';
	ck_assert_int_eq(certfp_normalize_hex(colon, out), C_OK);
	ck_assert_str_eq(out, want);
	ck_assert_int_eq(certfp_normalize_hex("abc123", out), C_ERR);
	ck_assert_int_eq(certfp_normalize_hex("", out), C_ERR);
	memcpy(upper, want, sizeof(upper));
	upper[10] = 'g';
	ck_assert_int_eq(certfp_normalize_hex(upper, out), C_ERR);
	memcpy(upper, want, CERTFP_HEX_CHARS);
	upper[CERTFP_HEX_CHARS] = 'a';
	upper[CERTFP_HEX_CHARS + 1] = '\0';
	ck_assert_int_eq(certfp_normalize_hex(upper, out), C_ERR);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("certfp");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_fixture_matches_openssl_cli);
	tcase_add_test(tc, test_fixture_pieces);
	tcase_add_test(tc, test_refused_files);
	tcase_add_test(tc, test_built_subjects);
	tcase_add_test(tc, test_normalize_hex);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
