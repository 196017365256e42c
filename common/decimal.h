/* decimal.h - exact decimal text <-> integer micro/minor units for prices and money.
 * Owns: the one parser of operator-typed prices. Never uses floating point. */
#ifndef PTS_DECIMAL_H
#define PTS_DECIMAL_H

#include <stddef.h>

/* Parses s, which must match ^[0-9]+(\.[0-9]{1,6})?$ (no sign, no exponent,
 * no spaces, no leading '.'), into integer micro-units (10^-6) in *out_micros.
 * Refuses a value above max_micros. Returns C_OK, or C_ERR with a static
 * one-line reason (lower case) in *reason. */
int decimal_parse_micros(const char *s, long long max_micros,
    long long *out_micros, const char **reason);

/* Formats an integer amount of minor units with exponent decimals:
 * (13700, 2) -> "137.00", (-4800, 2) -> "-48.00", (5, 0) -> "5".
 * exponent is 0..18. Returns C_OK, or C_ERR if out is too small. */
int decimal_format_minor(long long minor, int exponent, char *out, size_t cap);

/* (10000) -> "0.010000": six decimals, as prices are stored */
int decimal_format_micros(long long micros, char *out, size_t cap);

#endif
