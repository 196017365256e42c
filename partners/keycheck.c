/* keycheck.c - refuse partner public keys that must never be registered:
 * other types or curves, P-256 points that fail OpenSSL's public check, and
 * Ed25519 keys that are non-canonical, small-order or mixed-order.
 * Why: OpenSSL 3.0 verifies Ed25519 cofactorless without checking A, so
 * under a small-order key the forged signature (R = identity, S = 0)
 * verifies for every message. Never registers or stores a key itself. */
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "keycheck.h"
#include "errors.h"
#include "pts_assert.h"

#define KEYCHECK_PEM_MAX_BYTES 16384
#define ED25519_KEY_BYTES 32

/* the canonical encodings of the 8 points of order 1, 2, 4 and 8 */
static const unsigned char keycheck_small_order[8][32] = {
	{ 0x01 },                                               /* identity */
	{ 0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f }, /* 2 */
	{ 0x00 },                                               /* order 4 */
	{ [31] = 0x80 },                                        /* order 4 */
	{ 0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b,
	  0x76, 0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39,
	  0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a },
	{ 0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b,
	  0x76, 0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39,
	  0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0xfa },
	{ 0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4,
	  0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6,
	  0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05 },
	{ 0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4,
	  0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6,
	  0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x85 },
};

/* edwards25519: -x^2 + y^2 = 1 + d x^2 y^2 over GF(p), group order 8 * L */
struct ed_curve {
	BIGNUM *p, *d, *l;
	BN_CTX *ctx;
};

struct ed_point {
	BIGNUM *x, *y;
};

static int
ed_curve_init(struct ed_curve *c)
{
	memset(c, 0, sizeof(*c));
	c->ctx = BN_CTX_new();
	if (c->ctx == NULL)
		return C_ERR;
	if (BN_hex2bn(&c->p, "7fffffffffffffffffffffffffffffff"
	    "ffffffffffffffffffffffffffffffed") == 0 ||
	    BN_hex2bn(&c->d, "52036cee2b6ffe738cc740797779e898"
	    "00700a4d4141d8ab75eb4dca135978a3") == 0 ||
	    BN_hex2bn(&c->l, "10000000000000000000000000000000"
	    "14def9dea2f79cd65812631a5cf5d3ed") == 0)
		return C_ERR;
	return C_OK;
}

static void
ed_curve_free(struct ed_curve *c)
{
	BN_free(c->p);
	BN_free(c->d);
	BN_free(c->l);
	BN_CTX_free(c->ctx);
}

/* r = a + b (complete affine addition; d is not a square, so the
 * denominators never vanish on the curve); r may alias a */
static int
ed_add(const struct ed_curve *c, struct ed_point *r, const struct ed_point *a,
    const struct ed_point *b)
{
	BIGNUM *t, *nx, *ny, *den, *tmp;
	int rc = C_ERR;

	BN_CTX_start(c->ctx);
	t = BN_CTX_get(c->ctx);
	nx = BN_CTX_get(c->ctx);
	ny = BN_CTX_get(c->ctx);
	den = BN_CTX_get(c->ctx);
	tmp = BN_CTX_get(c->ctx);
	if (tmp == NULL)
		goto out;
	/* t = d x1 x2 y1 y2 */
	if (!BN_mod_mul(t, a->x, b->x, c->p, c->ctx) ||
	    !BN_mod_mul(tmp, a->y, b->y, c->p, c->ctx) ||
	    !BN_mod_mul(t, t, tmp, c->p, c->ctx) ||
	    !BN_mod_mul(t, t, c->d, c->p, c->ctx))
		goto out;
	/* nx = x1 y2 + y1 x2, ny = y1 y2 + x1 x2 */
	if (!BN_mod_mul(nx, a->x, b->y, c->p, c->ctx) ||
	    !BN_mod_mul(tmp, a->y, b->x, c->p, c->ctx) ||
	    !BN_mod_add(nx, nx, tmp, c->p, c->ctx) ||
	    !BN_mod_mul(ny, a->y, b->y, c->p, c->ctx) ||
	    !BN_mod_mul(tmp, a->x, b->x, c->p, c->ctx) ||
	    !BN_mod_add(ny, ny, tmp, c->p, c->ctx))
		goto out;
	/* x3 = nx / (1 + t), y3 = ny / (1 - t) */
	if (!BN_mod_add(den, BN_value_one(), t, c->p, c->ctx) ||
	    BN_mod_inverse(den, den, c->p, c->ctx) == NULL ||
	    !BN_mod_mul(r->x, nx, den, c->p, c->ctx) ||
	    !BN_mod_sub(den, BN_value_one(), t, c->p, c->ctx) ||
	    BN_mod_inverse(den, den, c->p, c->ctx) == NULL ||
	    !BN_mod_mul(r->y, ny, den, c->p, c->ctx))
		goto out;
	rc = C_OK;
out:
	BN_CTX_end(c->ctx);
	return rc;
}

/* decodes a canonical encoding (checked before) into a; C_ERR if y has no x */
static int
ed_decode(const struct ed_curve *c, const unsigned char pk[32],
    struct ed_point *a)
{
	unsigned char le[32];
	BIGNUM *u, *v;
	int sign = pk[31] >> 7, rc = C_ERR;

	BN_CTX_start(c->ctx);
	u = BN_CTX_get(c->ctx);
	v = BN_CTX_get(c->ctx);
	if (v == NULL)
		goto out;
	memcpy(le, pk, sizeof(le));
	le[31] &= 0x7f;
	if (BN_lebin2bn(le, sizeof(le), a->y) == NULL)
		goto out;
	/* x^2 = (y^2 - 1) / (d y^2 + 1) */
	if (!BN_mod_sqr(u, a->y, c->p, c->ctx) ||
	    !BN_mod_mul(v, u, c->d, c->p, c->ctx) ||
	    !BN_mod_add(v, v, BN_value_one(), c->p, c->ctx) ||
	    !BN_mod_sub(u, u, BN_value_one(), c->p, c->ctx) ||
	    BN_mod_inverse(v, v, c->p, c->ctx) == NULL ||
	    !BN_mod_mul(u, u, v, c->p, c->ctx))
		goto out;
	ERR_clear_error();
	if (BN_mod_sqrt(a->x, u, c->p, c->ctx) == NULL)
		goto out;
	if (BN_is_odd(a->x) != sign && !BN_sub(a->x, c->p, a->x))
		goto out;
	rc = C_OK;
out:
	ERR_clear_error();
	BN_CTX_end(c->ctx);
	return rc;
}

/* 1 if [L]a is the identity (0, 1), 0 if not, -1 on error */
static int
ed_order_is_l(const struct ed_curve *c, const struct ed_point *a)
{
	struct ed_point r = { BN_new(), BN_new() };
	int i, rc = -1;

	if (r.x == NULL || r.y == NULL)
		goto out;
	BN_zero(r.x);
	if (!BN_one(r.y))
		goto out;
	for (i = BN_num_bits(c->l) - 1; i >= 0; i--) {
		if (ed_add(c, &r, &r, &r) != C_OK)
			goto out;
		if (BN_is_bit_set(c->l, i) && ed_add(c, &r, &r, a) != C_OK)
			goto out;
	}
	rc = BN_is_zero(r.x) && BN_is_one(r.y);
out:
	BN_free(r.x);
	BN_free(r.y);
	return rc;
}

/* y < p, and not (x = 0, i.e. y = 1 or y = p - 1, with the sign bit set) */
static int
keycheck_ed25519_canonical(const unsigned char pk[32])
{
	static const unsigned char p_le[32] = {
		0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0x7f };
	unsigned char y[32];
	int i;

	memcpy(y, pk, sizeof(y));
	y[31] &= 0x7f;
	for (i = 31; i >= 0 && y[i] == p_le[i]; i--)
		;
	if (i < 0 || y[i] > p_le[i])
		return 0;                       /* y >= p */
	if ((pk[31] & 0x80) == 0)
		return 1;
	if (memcmp(y, keycheck_small_order[0], 32) == 0 ||
	    memcmp(y, keycheck_small_order[1], 32) == 0)
		return 0;                       /* y = 1 or p - 1: x = 0 */
	return 1;
}

int
keycheck_ed25519_raw(const unsigned char pk[32], const char **reason)
{
	struct ed_curve c;
	struct ed_point a = { BN_new(), BN_new() };
	size_t i;
	int rc = C_ERR, order;

	*reason = "internal error in the ed25519 key check";
	if (ed_curve_init(&c) != C_OK || a.x == NULL || a.y == NULL)
		goto out;
	if (!keycheck_ed25519_canonical(pk)) {
		*reason = "ed25519 key is not a canonical encoding";
		goto out;
	}
	for (i = 0; i < 8; i++) {
		if (memcmp(pk, keycheck_small_order[i], 32) == 0) {
			*reason = "ed25519 key is a small-order point";
			goto out;
		}
	}
	if (ed_decode(&c, pk, &a) != C_OK) {
		*reason = "ed25519 key is not a curve point";
		goto out;
	}
	order = ed_order_is_l(&c, &a);
	if (order < 0)
		goto out;
	if (order == 0) {
		*reason = "ed25519 key has a small-order component";
		goto out;
	}
	*reason = NULL;
	rc = C_OK;
out:
	BN_free(a.x);
	BN_free(a.y);
	ed_curve_free(&c);
	return rc;
}

static int
keycheck_is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* one "PUBLIC KEY" block, only whitespace around it */
static EVP_PKEY *
keycheck_read_pem(const char *pem, size_t pem_len, const char **reason)
{
	static const char begin[] = "-----BEGIN PUBLIC KEY-----";
	BIO *bio = NULL;
	EVP_PKEY *key = NULL;
	char *rest = NULL;
	long rest_len, i;
	size_t skip = 0;

	*reason = "not a PEM public key (SubjectPublicKeyInfo)";
	if (pem_len > KEYCHECK_PEM_MAX_BYTES) {
		*reason = "PEM text too large";
		return NULL;
	}
	while (skip < pem_len && keycheck_is_space(pem[skip]))
		skip++;
	if (pem_len - skip < sizeof(begin) - 1 ||
	    memcmp(pem + skip, begin, sizeof(begin) - 1) != 0)
		return NULL;
	ERR_clear_error();
	bio = BIO_new_mem_buf(pem + skip, (int)(pem_len - skip));
	if (bio == NULL)
		goto out;
	key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	if (key == NULL)
		goto out;
	rest_len = BIO_get_mem_data(bio, &rest);
	for (i = 0; i < rest_len; i++) {
		if (!keycheck_is_space(rest[i])) {
			*reason = "text after the PEM public key";
			EVP_PKEY_free(key);
			key = NULL;
			goto out;
		}
	}
out:
	ERR_clear_error();
	BIO_free(bio);
	return key;
}

static int
keycheck_p256(EVP_PKEY *key, const char **reason)
{
	EVP_PKEY_CTX *ctx = NULL;
	int rc = C_ERR;

	*reason = "p-256 key fails the public key check";
	ERR_clear_error();
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
	if (ctx == NULL)
		goto out;
	if (EVP_PKEY_public_check(ctx) != 1)
		goto out;
	rc = C_OK;
out:
	ERR_clear_error();
	EVP_PKEY_CTX_free(ctx);
	return rc;
}

int
keycheck_load_public_pem(const char *pem, size_t pem_len, EVP_PKEY **out,
    enum jws_alg *alg, const char **reason)
{
	unsigned char pk[ED25519_KEY_BYTES];
	size_t pk_len = sizeof(pk);
	EVP_PKEY *key;
	int rc = C_ERR;

	*out = NULL;
	*alg = JWS_ALG_UNKNOWN;
	key = keycheck_read_pem(pem, pem_len, reason);
	if (key == NULL)
		return C_ERR;
	if (jws_alg_from_pkey(key, alg) != C_OK) {
		*reason = "only Ed25519 and P-256 keys are accepted";
		goto out;
	}
	if (*alg == JWS_ALG_EDDSA) {
		ERR_clear_error();
		if (EVP_PKEY_get_raw_public_key(key, pk, &pk_len) != 1 ||
		    pk_len != sizeof(pk)) {
			ERR_clear_error();
			*reason = "ed25519 key has no 32-byte public value";
			goto out;
		}
		if (keycheck_ed25519_raw(pk, reason) != C_OK)
			goto out;
	} else if (keycheck_p256(key, reason) != C_OK) {
		goto out;
	}
	*reason = NULL;
	*out = key;
	key = NULL;
	rc = C_OK;
out:
	if (rc != C_OK)
		*alg = JWS_ALG_UNKNOWN;
	EVP_PKEY_free(key);
	return rc;
}
