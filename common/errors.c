/* errors.c - lookups over the errors.def table. Never allocates. */
#include <string.h>

#include "errors.h"

static const struct {
	int status;
	const char *code;
	const char *title;
} err_table[ERR__COUNT] = {
#define ERR(name, status, code, title) { status, code, title },
#include "errors.def"
#undef ERR
};

int
err_http_status(enum err e)
{
	if ((int)e < 0 || e >= ERR__COUNT)
		return 500;
	return err_table[e].status;
}

const char *
err_code(enum err e)
{
	if ((int)e < 0 || e >= ERR__COUNT)
		return "internal";
	return err_table[e].code;
}

const char *
err_title(enum err e)
{
	if ((int)e < 0 || e >= ERR__COUNT)
		return "internal error";
	return err_table[e].title;
}

int
err_from_code(const char *code, enum err *out)
{
	for (int i = 0; i < ERR__COUNT; i++) {
		if (strcmp(err_table[i].code, code) == 0) {
			*out = (enum err)i;
			return C_OK;
		}
	}
	return C_ERR;
}
