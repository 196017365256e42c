/* fuzz_b64url.c - libFuzzer target for strict base64url decoding.
 * Checks: no crash; a decode that succeeds re-encodes to the same text
 * (canonical), never writes past out_cap; encode then decode is identity. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "b64url.h"
#include "errors.h"
#include "fuzz_util.h"

static void
fuzz_decode(const char *in, size_t len)
{
	size_t cap = b64url_decoded_max(len), out_len = 0, enc_len;
	unsigned char *out = malloc(cap + 1);
	char *enc;

	FUZZ_CHECK(out != NULL);
	if (b64url_decode(in, len, out, cap, &out_len) == C_OK) {
		FUZZ_CHECK(out_len <= cap);
		enc_len = b64url_encoded_len(out_len);
		FUZZ_CHECK(enc_len == len);
		enc = malloc(enc_len + 1);
		FUZZ_CHECK(enc != NULL);
		FUZZ_CHECK(b64url_encode(out, out_len, enc, enc_len + 1) == enc_len);
		FUZZ_CHECK(memcmp(enc, in, len) == 0);
		free(enc);
		/* a buffer one byte short must be refused, not overrun */
		if (out_len > 0) {
			unsigned char *small = malloc(out_len - 1 + 1);
			size_t n2 = 0;
			FUZZ_CHECK(small != NULL);
			FUZZ_CHECK(b64url_decode(in, len, small, out_len - 1, &n2) == C_ERR);
			free(small);
		}
	}
	free(out);
}

static void
fuzz_roundtrip(const unsigned char *data, size_t size)
{
	size_t enc_len = b64url_encoded_len(size), n = 0;
	char *enc = malloc(enc_len + 1);
	unsigned char *dec = malloc(size + 1);

	FUZZ_CHECK(enc != NULL && dec != NULL);
	FUZZ_CHECK(b64url_encode(data, size, enc, enc_len + 1) == enc_len);
	FUZZ_CHECK(enc[enc_len] == '\0');
	for (size_t i = 0; i < enc_len; i++)
		FUZZ_CHECK(enc[i] != '=' && enc[i] != '+' && enc[i] != '/');
	FUZZ_CHECK(b64url_decode(enc, enc_len, dec, size, &n) == C_OK);
	FUZZ_CHECK(n == size && memcmp(dec, data, size) == 0);
	free(enc);
	free(dec);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_decode((const char *)data, size);
	fuzz_roundtrip(data, size);
	return 0;
}
