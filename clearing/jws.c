/* jws.c - parse and verify compact JWS (RFC 7515) with EdDSA (RFC 8037) or
 * ES256 (raw r||s), and sign them for receipts and tests.
 * Owns: structure, JSON strictness, header policy, signatures. Never takes a
 * key from a token, never touches the database or the payload schema. */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>

#include "jws.h"
#include "b64url.h"
#include "pts_limits.h"
#include "pts_assert.h"

enum jws_part { JWS_PART_HEADER = 0, JWS_PART_PAYLOAD = 1 };

/* the P-256 group order n, big-endian */
static const unsigned char jws_p256_order[32] = {
	0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84,
	0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
};

static const char *const jws_detail_not_object[2] = {
	"header: not a JSON object", "payload: not a JSON object" };
static const char *const jws_detail_bad_json[2] = {
	"header: invalid JSON", "payload: invalid JSON" };
static const char *const jws_detail_duplicate[2] = {
	"header: duplicate member name", "payload: duplicate member name" };
static const char *const jws_detail_trailing[2] = {
	"header: text after the JSON object",
	"payload: text after the JSON object" };

const struct jws_policy jws_policy_message = { JWS_TYP_MESSAGE, 0 };

const char *
jws_alg_name(enum jws_alg a)
{
	switch (a) {
	case JWS_ALG_EDDSA:
		return "EdDSA";
	case JWS_ALG_ES256:
		return "ES256";
	default:
		return "unknown";
	}
}

/* splits "h.p.s": exactly two dots, header and payload not empty; an empty
 * signature is zero bytes of valid base64url, a signature of the wrong length
 * that fails verification (protocol.md §2.1), not a malformed token */
static int
jws_split(const char *raw, size_t raw_len, size_t *dot1, size_t *dot2)
{
	const char *p1, *p2;

	p1 = memchr(raw, '.', raw_len);
	if (p1 == NULL)
		return C_ERR;
	*dot1 = (size_t)(p1 - raw);
	p2 = memchr(p1 + 1, '.', raw_len - *dot1 - 1);
	if (p2 == NULL)
		return C_ERR;
	*dot2 = (size_t)(p2 - raw);
	if (memchr(p2 + 1, '.', raw_len - *dot2 - 1) != NULL)
		return C_ERR;
	if (*dot1 == 0 || *dot2 == *dot1 + 1)
		return C_ERR;
	return C_OK;
}

/* decodes one part into a heap buffer sized from the input (+1 so that a
 * zero-length result still gets a pointer) */
static enum err
jws_decode_part(const char *in, size_t in_len, unsigned char **out,
    size_t *out_len)
{
	size_t cap = b64url_decoded_max(in_len) + 1;

	*out = malloc(cap);
	if (*out == NULL)
		return ERR_INTERNAL;
	if (b64url_decode(in, in_len, *out, cap, out_len) != C_OK)
		return ERR_MALFORMED_JWS;
	return ERR_OK;
}

/* turns every \u0000 escape inside a string into \u0001 (same length) */
static void
jws_json_patch_nul(char *buf, size_t len)
{
	int in_string = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		if (!in_string) {
			in_string = buf[i] == '"';
			continue;
		}
		if (buf[i] == '"') {
			in_string = 0;
			continue;
		}
		if (buf[i] != '\\' || i + 1 >= len)
			continue;
		i++;
		if (buf[i] == 'u' && i + 4 < len &&
		    memcmp(buf + i + 1, "0000", 4) == 0)
			buf[i + 4] = '1';
	}
}

/* overwrites the number token that ends at end_pos with "0" and blanks */
static int
jws_json_patch_number(char *buf, size_t len, int end_pos)
{
	size_t end, start;

	if (end_pos <= 0 || (size_t)end_pos > len)
		return C_ERR;
	end = (size_t)end_pos;
	start = end;
	while (start > 0 && strchr("0123456789+-.eE", buf[start - 1]) != NULL &&
	    buf[start - 1] != '\0')
		start--;
	if (start == end || (end - start == 1 && buf[start] == '0'))
		return C_ERR;
	buf[start] = '0';
	memset(buf + start + 1, ' ', end - start - 1);
	return C_OK;
}

/* valid JSON whose values jansson cannot hold: a schema error, not a
 * syntax error */
static int
jws_json_is_value_error(const json_error_t *e)
{
	enum json_error_code c = json_error_code(e);

	return c == json_error_numeric_overflow ||
	    c == json_error_null_character || c == json_error_null_byte_in_key;
}

static enum err
jws_json_error(const json_error_t *e, enum jws_part part, const char **detail)
{
	switch (json_error_code(e)) {
	case json_error_out_of_memory:
		*detail = "out of memory";
		return ERR_INTERNAL;
	case json_error_duplicate_key:
		*detail = jws_detail_duplicate[part];
		break;
	case json_error_end_of_input_expected:
		*detail = jws_detail_trailing[part];
		break;
	default:
		*detail = jws_detail_bad_json[part];
		break;
	}
	return ERR_MALFORMED_JWS;
}

/* Loads one JSON object: no duplicates, nothing before '{' or after '}'.
 * A number too large for 64 bits or a \u0000 is valid JSON: the text is then
 * re-parsed with those values patched so that any real syntax error later in
 * it is still found, and *patched is set (the values are not the sender's). */
static enum err
jws_json_load(const unsigned char *buf, size_t len, enum jws_part part,
    json_t **out, int *patched, const char **detail)
{
	json_error_t e;
	char *copy = NULL;
	enum err rc = ERR_MALFORMED_JWS;
	size_t tries;

	*out = NULL;
	*patched = 0;
	if (len < 2 || buf[0] != '{' || buf[len - 1] != '}') {
		*detail = jws_detail_not_object[part];
		goto out;
	}
	*out = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &e);
	if (*out != NULL) {
		rc = ERR_OK;
		goto out;
	}
	if (!jws_json_is_value_error(&e)) {
		rc = jws_json_error(&e, part, detail);
		goto out;
	}
	copy = malloc(len);
	if (copy == NULL) {
		rc = ERR_INTERNAL;
		goto out;
	}
	memcpy(copy, buf, len);
	jws_json_patch_nul(copy, len);
	for (tries = 0; tries <= len; tries++) {
		*out = json_loadb(copy, len, JSON_REJECT_DUPLICATES, &e);
		if (*out != NULL) {
			*patched = 1;
			rc = ERR_OK;
			goto out;
		}
		if (json_error_code(&e) != json_error_numeric_overflow ||
		    jws_json_patch_number(copy, len, e.position) != C_OK)
			break;
	}
	rc = jws_json_error(&e, part, detail);
out:
	free(copy);
	if (rc == ERR_OK && !json_is_object(*out)) {
		*detail = jws_detail_not_object[part];
		rc = ERR_MALFORMED_JWS;
	}
	if (rc != ERR_OK) {
		json_decref(*out);
		*out = NULL;
	}
	return rc;
}

static int
jws_json_str_eq(const json_t *s, const char *want)
{
	size_t n = strlen(want);

	return json_string_length(s) == n &&
	    memcmp(json_string_value(s), want, n) == 0;
}

/* alg, then crit: unsupported_alg */
static enum err
jws_check_alg(struct jws *t)
{
	json_t *alg = json_object_get(t->header, "alg");

	if (alg == NULL) {
		t->detail = "alg: missing";
		return ERR_UNSUPPORTED_ALG;
	}
	if (!json_is_string(alg)) {
		t->detail = "alg: not a string";
		return ERR_UNSUPPORTED_ALG;
	}
	if (jws_json_str_eq(alg, "EdDSA")) {
		t->alg = JWS_ALG_EDDSA;
	} else if (jws_json_str_eq(alg, "ES256")) {
		t->alg = JWS_ALG_ES256;
	} else {
		t->detail = "alg: only EdDSA and ES256 are accepted";
		return ERR_UNSUPPORTED_ALG;
	}
	if (json_object_get(t->header, "crit") != NULL) {
		t->detail = "crit: no extension is understood";
		return ERR_UNSUPPORTED_ALG;
	}
	return ERR_OK;
}

static int
jws_kid_valid(const json_t *kid)
{
	const char *s = json_string_value(kid);
	size_t i, n = json_string_length(kid);

	if (n < 1 || n > LIMIT_KID_CHARS)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == ':' || c == '-'))
			return 0;
	}
	return 1;
}

/* other header fields, typ, kid: malformed_jws */
static enum err
jws_check_fields(struct jws *t, const struct jws_policy *policy)
{
	const char *key;
	json_t *value, *typ, *kid;

	json_object_foreach(t->header, key, value) {
		if (strcmp(key, "alg") != 0 && strcmp(key, "kid") != 0 &&
		    strcmp(key, "typ") != 0 && strcmp(key, "crit") != 0) {
			t->detail = "header: only alg, kid and typ are allowed";
			return ERR_MALFORMED_JWS;
		}
	}
	typ = json_object_get(t->header, "typ");
	if (typ != NULL && (!json_is_string(typ) ||
	    !jws_json_str_eq(typ, policy->typ))) {
		t->detail = strcmp(policy->typ, JWS_TYP_MESSAGE) == 0 ?
		    "typ: must be points+jwt" : "typ: not the expected type";
		return ERR_MALFORMED_JWS;
	}
	kid = json_object_get(t->header, "kid");
	if (kid == NULL) {
		t->detail = "kid: missing";
		return ERR_MALFORMED_JWS;
	}
	if (!json_is_string(kid) || !jws_kid_valid(kid)) {
		t->detail = "kid: must be 1 to 128 characters of [A-Za-z0-9._:-]";
		return ERR_MALFORMED_JWS;
	}
	memcpy(t->kid, json_string_value(kid), json_string_length(kid));
	t->kid[json_string_length(kid)] = '\0';
	return ERR_OK;
}

/* structure and JSON of all three parts: malformed_jws */
static enum err
jws_parse_structure(struct jws *t, const struct jws_policy *policy,
    int *header_patched)
{
	unsigned char *buf = NULL;
	size_t dot1, dot2, n;
	int patched = 0;
	enum err rc;

	if (jws_split(t->raw, t->raw_len, &dot1, &dot2) != C_OK) {
		t->detail = "not three parts separated by dots, with a non-empty header and payload";
		return ERR_MALFORMED_JWS;
	}
	t->signing_input_len = dot2;
	t->detail = "bad base64url";
	rc = jws_decode_part(t->raw, dot1, &buf, &n);
	if (rc == ERR_OK)
		rc = jws_json_load(buf, n, JWS_PART_HEADER, &t->header,
		    header_patched, &t->detail);
	free(buf);
	buf = NULL;
	if (rc != ERR_OK)
		return rc;
	t->detail = "bad base64url";
	rc = jws_decode_part(t->raw + dot1 + 1, dot2 - dot1 - 1, &buf, &n);
	if (rc == ERR_OK && !policy->payload_opaque)
		rc = jws_json_load(buf, n, JWS_PART_PAYLOAD, &t->payload,
		    &patched, &t->detail);
	free(buf);
	if (rc != ERR_OK)
		return rc;
	if (patched) {
		json_decref(t->payload);
		t->payload = NULL;
		t->payload_err = ERR_INVALID_MESSAGE;
	}
	t->detail = "bad base64url";
	rc = jws_decode_part(t->raw + dot2 + 1, t->raw_len - dot2 - 1,
	    &t->sig, &t->sig_len);
	if (rc != ERR_OK)
		return rc;
	t->detail = NULL;
	return ERR_OK;
}

enum err
jws_parse_policy(const char *raw, size_t raw_len,
    const struct jws_policy *policy, struct jws *out)
{
	int header_patched = 0;
	enum err rc;

	PTS_ASSERT(raw != NULL || raw_len == 0);
	PTS_ASSERT(policy != NULL && policy->typ != NULL);
	memset(out, 0, sizeof(*out));
	out->raw = raw;
	out->raw_len = raw_len;
	out->payload_err = ERR_OK;
	rc = jws_parse_structure(out, policy, &header_patched);
	if (rc == ERR_INTERNAL)
		out->detail = "out of memory";
	if (rc != ERR_OK)
		return rc;
	rc = jws_check_alg(out);
	if (rc != ERR_OK)
		return rc;
	rc = jws_check_fields(out, policy);
	if (rc != ERR_OK)
		return rc;
	/* a patched header always fails a check above; keep it refused if the
	 * checks ever change */
	if (header_patched) {
		out->detail = "header: value out of range";
		return ERR_MALFORMED_JWS;
	}
	if (out->payload_err != ERR_OK)
		out->detail = "payload: number out of range or \\u0000 in a string";
	return ERR_OK;
}

enum err
jws_parse(const char *raw, size_t raw_len, struct jws *out)
{
	return jws_parse_policy(raw, raw_len, &jws_policy_message, out);
}

void
jws_free(struct jws *t)
{
	if (t == NULL)
		return;
	json_decref(t->header);
	json_decref(t->payload);
	free(t->sig);
	t->header = NULL;
	t->payload = NULL;
	t->sig = NULL;
	t->sig_len = 0;
}

int
jws_alg_from_pkey(EVP_PKEY *key, enum jws_alg *out)
{
	char group[32];
	size_t group_len = 0;

	*out = JWS_ALG_UNKNOWN;
	if (key == NULL)
		return C_ERR;
	if (EVP_PKEY_is_a(key, "ED25519")) {
		*out = JWS_ALG_EDDSA;
		return C_OK;
	}
	if (!EVP_PKEY_is_a(key, "EC"))
		return C_ERR;
	ERR_clear_error();
	if (EVP_PKEY_get_group_name(key, group, sizeof(group), &group_len) != 1) {
		ERR_clear_error();
		return C_ERR;
	}
	if (strcmp(group, "prime256v1") != 0)
		return C_ERR;
	*out = JWS_ALG_ES256;
	return C_OK;
}

/* 1 if the 32-byte big-endian v is in [1, n-1] */
static int
jws_p256_scalar_ok(const unsigned char v[32])
{
	static const unsigned char zero[32];

	return memcmp(v, zero, 32) != 0 && memcmp(v, jws_p256_order, 32) < 0;
}

/* DER INTEGER of a 32-byte unsigned big-endian value; returns bytes written */
static size_t
jws_der_put_uint(unsigned char *out, const unsigned char v[32])
{
	size_t i = 0, n, pad;

	while (i < 31 && v[i] == 0)
		i++;
	n = 32 - i;
	pad = (v[i] & 0x80) ? 1 : 0;
	out[0] = 0x02;
	out[1] = (unsigned char)(n + pad);
	out[2] = 0x00;
	memcpy(out + 2 + pad, v + i, n);
	return 2 + pad + n;
}

/* raw r||s -> DER ECDSA-Sig-Value (at most 72 bytes, short-form lengths) */
static size_t
jws_es256_to_der(const unsigned char sig[64], unsigned char der[72])
{
	size_t n = 2;

	n += jws_der_put_uint(der + n, sig);
	n += jws_der_put_uint(der + n, sig + 32);
	PTS_ASSERT(n <= 72);
	der[0] = 0x30;
	der[1] = (unsigned char)(n - 2);
	return n;
}

enum err
jws_verify_signature(enum jws_alg alg, EVP_PKEY *key,
    const unsigned char *msg, size_t msg_len,
    const unsigned char *sig, size_t sig_len)
{
	EVP_MD_CTX *ctx = NULL;
	unsigned char der[72];
	const unsigned char *check_sig = sig;
	size_t check_len = sig_len;
	const EVP_MD *md = NULL;
	enum jws_alg key_alg;
	enum err rc = ERR_INVALID_SIGNATURE;
	int ok;

	PTS_ASSERT(key != NULL && msg != NULL);
	if (jws_alg_from_pkey(key, &key_alg) != C_OK || key_alg != alg)
		goto out;
	if (alg == JWS_ALG_EDDSA) {
		if (sig_len != JWS_EDDSA_SIG_BYTES)
			goto out;
	} else {
		if (sig_len != JWS_ES256_SIG_BYTES ||
		    !jws_p256_scalar_ok(sig) || !jws_p256_scalar_ok(sig + 32))
			goto out;
		check_len = jws_es256_to_der(sig, der);
		check_sig = der;
		md = EVP_sha256();
	}
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL) {
		rc = ERR_INTERNAL;
		goto out;
	}
	ERR_clear_error();
	if (EVP_DigestVerifyInit(ctx, NULL, md, NULL, key) != 1)
		goto out;
	ok = EVP_DigestVerify(ctx, check_sig, check_len, msg, msg_len);
	if (ok == 1)
		rc = ERR_OK;
out:
	ERR_clear_error();
	EVP_MD_CTX_free(ctx);
	return rc;
}

enum err
jws_verify(const struct jws *t, EVP_PKEY *key)
{
	PTS_ASSERT(t != NULL && key != NULL);
	if (t->alg == JWS_ALG_UNKNOWN || t->sig == NULL ||
	    t->signing_input_len == 0)
		return ERR_INVALID_SIGNATURE;
	return jws_verify_signature(t->alg, key,
	    (const unsigned char *)t->raw, t->signing_input_len,
	    t->sig, t->sig_len);
}

/* DER ECDSA-Sig-Value -> raw r||s, each left-padded to 32 bytes */
static int
jws_es256_from_der(const unsigned char *der, size_t der_len,
    unsigned char out[64])
{
	ECDSA_SIG *es = NULL;
	const BIGNUM *r = NULL, *s = NULL;
	const unsigned char *p = der;
	int rc = C_ERR;

	es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
	if (es == NULL)
		goto out;
	ECDSA_SIG_get0(es, &r, &s);
	if (BN_bn2binpad(r, out, 32) != 32 || BN_bn2binpad(s, out + 32, 32) != 32)
		goto out;
	rc = C_OK;
out:
	ECDSA_SIG_free(es);
	return rc;
}

/* signs msg; sig gets JWS_*_SIG_BYTES (64) bytes */
static int
jws_sign_raw(EVP_PKEY *key, enum jws_alg alg, const unsigned char *msg,
    size_t msg_len, unsigned char sig[64])
{
	EVP_MD_CTX *ctx = NULL;
	unsigned char der[80];
	size_t n = sizeof(der);
	int rc = C_ERR;

	ctx = EVP_MD_CTX_new();
	if (ctx == NULL)
		goto out;
	ERR_clear_error();
	if (EVP_DigestSignInit(ctx, NULL,
	    alg == JWS_ALG_ES256 ? EVP_sha256() : NULL, NULL, key) != 1)
		goto out;
	if (EVP_DigestSign(ctx, der, &n, msg, msg_len) != 1)
		goto out;
	if (alg == JWS_ALG_EDDSA) {
		if (n != JWS_EDDSA_SIG_BYTES)
			goto out;
		memcpy(sig, der, n);
	} else if (jws_es256_from_der(der, n, sig) != C_OK) {
		goto out;
	}
	rc = C_OK;
out:
	ERR_clear_error();
	EVP_MD_CTX_free(ctx);
	return rc;
}

/* header JSON text, members in the order alg, kid, typ */
static char *
jws_header_text(enum jws_alg alg, const char *kid, const char *typ)
{
	json_t *h;
	char *text = NULL;

	h = json_object();
	if (h == NULL)
		return NULL;
	if (json_object_set_new(h, "alg", json_string(jws_alg_name(alg))) != 0 ||
	    json_object_set_new(h, "kid", json_string(kid)) != 0)
		goto out;
	if (typ != NULL && json_object_set_new(h, "typ", json_string(typ)) != 0)
		goto out;
	text = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
out:
	json_decref(h);
	return text;
}

char *
jws_sign_compact(EVP_PKEY *key, const char *kid, const char *typ,
    const char *payload, size_t payload_len)
{
	enum jws_alg alg;
	char *header = NULL, *out = NULL;
	unsigned char sig[64];
	size_t h_len, p_len, s_len, cap, n;

	PTS_ASSERT(kid != NULL && (payload != NULL || payload_len == 0));
	if (jws_alg_from_pkey(key, &alg) != C_OK)
		goto out;
	header = jws_header_text(alg, kid, typ);
	if (header == NULL)
		goto out;
	h_len = b64url_encoded_len(strlen(header));
	p_len = b64url_encoded_len(payload_len);
	s_len = b64url_encoded_len(sizeof(sig));
	cap = h_len + 1 + p_len + 1 + s_len + 1;
	out = malloc(cap);
	if (out == NULL)
		goto out;
	n = b64url_encode((const unsigned char *)header, strlen(header), out, cap);
	out[n++] = '.';
	n += b64url_encode((const unsigned char *)payload, payload_len,
	    out + n, cap - n);
	if (jws_sign_raw(key, alg, (const unsigned char *)out, n, sig) != C_OK) {
		free(out);
		out = NULL;
		goto out;
	}
	out[n++] = '.';
	n += b64url_encode(sig, sizeof(sig), out + n, cap - n);
	PTS_ASSERT(n + 1 == cap);
out:
	free(header);
	return out;
}
