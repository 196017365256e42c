/* certfp.c - fingerprint, CN, subject and expiry of partner certificates.
 * Owns: reading PEM certificates for the registry. Never verifies chains
 * (the TLS listener does) and never touches the database. */
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "certfp.h"
#include "errors.h"
#include "pts_assert.h"

int
certfp_sha256_hex(X509 *cert, char out[CERTFP_HEX_CHARS + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	out[0] = '\0';
	if (cert == NULL)
		return C_ERR;
	ERR_clear_error();
	if (X509_digest(cert, EVP_sha256(), md, &len) != 1 || len != 32)
		return C_ERR;
	for (unsigned int i = 0; i < len; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 0x0f];
	}
	out[CERTFP_HEX_CHARS] = '\0';
	return C_OK;
}

int
certfp_cn(X509 *cert, char *out, size_t cap)
{
	X509_NAME *name;
	X509_NAME_ENTRY *entry;
	unsigned char *utf8 = NULL;
	int idx, len, rc = C_ERR;

	if (cap == 0)
		return C_ERR;
	out[0] = '\0';
	if (cert == NULL)
		return C_ERR;
	name = X509_get_subject_name(cert);
	if (name == NULL)
		return C_ERR;
	idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	/* exactly one CN: two would make the identity ambiguous */
	if (idx < 0 || X509_NAME_get_index_by_NID(name, NID_commonName, idx) >= 0)
		return C_ERR;
	entry = X509_NAME_get_entry(name, idx);
	if (entry == NULL)
		return C_ERR;
	ERR_clear_error();
	len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry));
	if (len <= 0 || (size_t)len >= cap)
		goto out;
	if (memchr(utf8, '\0', (size_t)len) != NULL)
		goto out;
	memcpy(out, utf8, (size_t)len);
	out[len] = '\0';
	rc = C_OK;
out:
	OPENSSL_free(utf8);
	return rc;
}

int
certfp_subject(X509 *cert, char *out, size_t cap)
{
	BIO *bio = NULL;
	char *data = NULL;
	long len;
	int rc = C_ERR;

	if (cap == 0 || cert == NULL)
		return C_ERR;
	out[0] = '\0';
	ERR_clear_error();
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL)
		goto out;
	if (X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0,
	    XN_FLAG_RFC2253) < 0)
		goto out;
	len = BIO_get_mem_data(bio, &data);
	if (len < 0 || (size_t)len >= cap)
		goto out;
	if (len > 0)
		memcpy(out, data, (size_t)len);
	out[len] = '\0';
	rc = C_OK;
out:
	BIO_free(bio);
	return rc;
}

int
certfp_not_after(X509 *cert, long long *out_unix)
{
	struct tm tm;

	if (cert == NULL)
		return C_ERR;
	memset(&tm, 0, sizeof(tm));
	ERR_clear_error();
	if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1)
		return C_ERR;
	*out_unix = (long long)timegm(&tm);
	return C_OK;
}

X509 *
certfp_read_pem_file(const char *path, const char **reason)
{
	BIO *bio = NULL;
	X509 *cert = NULL;

	ERR_clear_error();
	bio = BIO_new_file(path, "r");
	if (bio == NULL) {
		*reason = "cannot read the certificate file";
		goto out;
	}
	cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (cert == NULL)
		*reason = "not a PEM X.509 certificate";
out:
	BIO_free(bio);
	ERR_clear_error();
	return cert;
}

int
certfp_from_pem_file(const char *path, char out[CERTFP_HEX_CHARS + 1],
    char *cn, size_t cncap, long long *not_after_unix, const char **reason)
{
	X509 *cert;
	int rc = C_ERR;

	cert = certfp_read_pem_file(path, reason);
	if (cert == NULL)
		return C_ERR;
	if (certfp_sha256_hex(cert, out) != C_OK) {
		*reason = "cannot compute the certificate fingerprint";
		goto out;
	}
	if (certfp_cn(cert, cn, cncap) != C_OK) {
		*reason = "certificate subject has no single usable common name";
		goto out;
	}
	if (certfp_not_after(cert, not_after_unix) != C_OK) {
		*reason = "certificate has an unreadable notAfter";
		goto out;
	}
	rc = C_OK;
out:
	X509_free(cert);
	return rc;
}

int
certfp_normalize_hex(const char *in, char out[CERTFP_HEX_CHARS + 1])
{
	size_t n = 0;

	out[0] = '\0';
	for (; *in != '\0'; in++) {
		char ch = *in;
		if (ch == ':')
			continue;
		if (ch >= 'A' && ch <= 'F')
			ch = (char)(ch - 'A' + 'a');
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
			return C_ERR;
		if (n == CERTFP_HEX_CHARS)
			return C_ERR;
		out[n++] = ch;
	}
	if (n != CERTFP_HEX_CHARS)
		return C_ERR;
	out[n] = '\0';
	return C_OK;
}
