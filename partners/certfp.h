/* certfp.h - partner TLS certificate facts: SHA-256 fingerprint, subject CN, expiry.
 * Owns: how a certificate is named in the registry. Never decides trust. */
#ifndef PTS_CERTFP_H
#define PTS_CERTFP_H

#include <stddef.h>
#include <openssl/x509.h>

#define CERTFP_HEX_CHARS 64

/* SHA-256 of the DER encoding, lower-case hex without colons. C_OK/C_ERR */
int certfp_sha256_hex(X509 *cert, char out[CERTFP_HEX_CHARS + 1]);

/* the subject's one commonName as UTF-8; C_ERR if there is none, more than
 * one, an embedded NUL, or it does not fit in cap */
int certfp_cn(X509 *cert, char *out, size_t cap);

/* the subject as one RFC 2253 line ("CN=acme,O=Example"); C_OK/C_ERR */
int certfp_subject(X509 *cert, char *out, size_t cap);

/* notAfter in Unix seconds; C_OK/C_ERR */
int certfp_not_after(X509 *cert, long long *out_unix);

/* reads the first PEM certificate of path; NULL with a static reason */
X509 *certfp_read_pem_file(const char *path, const char **reason);

/* reads a PEM certificate file and gives its fingerprint, CN and notAfter;
 * C_OK, or C_ERR with a static one-line reason */
int certfp_from_pem_file(const char *path, char out[CERTFP_HEX_CHARS + 1],
    char *cn, size_t cncap, long long *not_after_unix, const char **reason);

/* normalizes an operator-typed fingerprint (upper case and colons allowed)
 * into 64 lower-case hex digits; C_OK/C_ERR */
int certfp_normalize_hex(const char *in, char out[CERTFP_HEX_CHARS + 1]);

#endif
