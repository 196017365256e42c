/* fuzz_util.h - shared helpers of the libFuzzer targets: fixed test keys
 * (never real ones) and a loud stop when an invariant breaks.
 * Never used by pointsd itself; built only by scripts/fuzz.sh. */
#ifndef PTS_FUZZ_UTIL_H
#define PTS_FUZZ_UTIL_H

#include <stdio.h>
#include <stdlib.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

/* like PTS_ASSERT, but names the fuzzer's own expectation */
#define FUZZ_CHECK(cond) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "fuzz check failed: %s (%s:%d)\n", \
			    #cond, __FILE__, __LINE__); \
			abort(); \
		} \
	} while (0)

/* RFC 8037 A.1 private key (public test vector) */
static const unsigned char fuzz_ed25519_d[32] = {
	0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4,
	0x92, 0xec, 0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19,
	0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
};

/* a P-256 key made for these tests only */
static const char fuzz_p256_pem[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgXLJ+F1CmIvvwbzup\n"
	"nBQA/XNo84JpoVFFYnMC24hY7R2hRANCAARMHd57tvAE3bsr8+3MPrWOhea1dHT2\n"
	"FH2m5FUlWXiek+2aA3E6Cmb0eXvl8L7wUFgf3WzikCOkFOKLuANnIq91\n"
	"-----END PRIVATE KEY-----\n";

static inline EVP_PKEY *
fuzz_key_ed25519(void)
{
	EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL,
	    fuzz_ed25519_d, sizeof(fuzz_ed25519_d));

	FUZZ_CHECK(k != NULL);
	return k;
}

static inline EVP_PKEY *
fuzz_key_p256(void)
{
	BIO *b = BIO_new_mem_buf(fuzz_p256_pem, -1);
	EVP_PKEY *k;

	FUZZ_CHECK(b != NULL);
	k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	FUZZ_CHECK(k != NULL);
	return k;
}

/* a NUL-terminated copy of the input (the caller frees it) */
static inline char *
fuzz_cstr(const unsigned char *data, size_t size)
{
	char *s = malloc(size + 1);

	FUZZ_CHECK(s != NULL);
	for (size_t i = 0; i < size; i++)
		s[i] = (char)data[i];
	s[size] = '\0';
	return s;
}

#endif
