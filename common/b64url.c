/* b64url.c - strict base64url without padding (RFC 4648 §5, RFC 7515 §2).
 * Hand-written because OpenSSL's EVP_DecodeBlock decodes standard base64 and
 * is lenient (padding, whitespace, no canonical check). Never allocates. */
#include <stdint.h>

#include "b64url.h"
#include "errors.h"
#include "pts_assert.h"

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* value 0..63 of one character, or -1 */
static int
b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

size_t
b64url_decoded_max(size_t in_len)
{
	size_t rem = in_len % 4;

	return in_len / 4 * 3 + (rem > 1 ? rem - 1 : 0);
}

int
b64url_decode(const char *in, size_t in_len, unsigned char *out,
    size_t out_cap, size_t *out_len)
{
	size_t rem = in_len % 4;
	size_t i, n = 0;
	uint32_t acc = 0;
	int bits = 0;

	*out_len = 0;
	if (rem == 1 || out_cap < b64url_decoded_max(in_len))
		return C_ERR;
	for (i = 0; i < in_len; i++) {
		int v = b64url_value((unsigned char)in[i]);

		if (v < 0)
			return C_ERR;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* the leftover 2 or 4 bits of a short final group must be zero, so that
	 * each byte string has exactly one accepted encoding */
	if (acc != 0)
		return C_ERR;
	PTS_ASSERT(n == b64url_decoded_max(in_len));
	*out_len = n;
	return C_OK;
}

size_t
b64url_encoded_len(size_t in_len)
{
	size_t rem = in_len % 3;

	return in_len / 3 * 4 + (rem > 0 ? rem + 1 : 0);
}

size_t
b64url_encode(const unsigned char *in, size_t in_len, char *out,
    size_t out_cap)
{
	size_t i, n = 0;
	uint32_t acc = 0;
	int bits = 0;

	PTS_ASSERT(out_cap > b64url_encoded_len(in_len));
	for (i = 0; i < in_len; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[n++] = b64url_alphabet[(acc >> bits) & 63];
		}
		acc &= (1u << bits) - 1;
	}
	if (bits > 0)
		out[n++] = b64url_alphabet[(acc << (6 - bits)) & 63];
	out[n] = '\0';
	PTS_ASSERT(n == b64url_encoded_len(in_len));
	return n;
}
