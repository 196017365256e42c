/* errors.h - error codes generated from errors.def, and C_OK/C_ERR.
 * Owns: the mapping code -> HTTP status, JSON code, title. */
#ifndef PTS_ERRORS_H
#define PTS_ERRORS_H

#define C_OK 0
#define C_ERR (-1)

enum err {
#define ERR(name, status, code, title) ERR_##name,
#include "errors.def"
#undef ERR
	ERR__COUNT
};

int err_http_status(enum err e);
const char *err_code(enum err e);
const char *err_title(enum err e);
/* returns C_OK and sets *out when code names an error, else C_ERR */
int err_from_code(const char *code, enum err *out);

#endif
