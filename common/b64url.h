/* b64url.h - strict base64url (RFC 4648 §5) without padding.
 * Owns: encoding and canonical decoding. Never accepts '=', whitespace or
 * non-canonical trailing bits. */
#ifndef PTS_B64URL_H
#define PTS_B64URL_H

#include <stddef.h>

/* bytes needed to decode in_len characters (never less than the real size) */
size_t b64url_decoded_max(size_t in_len);
/* C_OK and *out_len on success; C_ERR on any non-alphabet byte, '=',
 * in_len % 4 == 1, non-zero unused bits, or out_cap too small */
int b64url_decode(const char *in, size_t in_len, unsigned char *out,
    size_t out_cap, size_t *out_len);
/* characters of the encoding of in_len bytes, without the NUL */
size_t b64url_encoded_len(size_t in_len);
/* writes the encoding and a NUL; returns its length; out_cap must be at
 * least b64url_encoded_len(in_len) + 1 */
size_t b64url_encode(const unsigned char *in, size_t in_len, char *out,
    size_t out_cap);

#endif
