/* limits.h - transitional shim: -Icommon puts this file in front of the
 * system <limits.h>, so it forwards there; the project's limits are in
 * pts_limits.h. To be removed once every include names pts_limits.h. */
#include_next <limits.h>
#include "pts_limits.h"
