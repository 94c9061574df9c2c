/* Thread-local error text, version queries and small shared checks. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static _Thread_local char last_error[512];

const char *isthmus_last_error(void) { return last_error; }

void isthmus__clear_error(void) { last_error[0] = '\0'; }

isthmus_status isthmus__fail(isthmus_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

int32_t isthmus_abi_version(void) { return ISTHMUS_ABI_VERSION; }

const char *isthmus_version(void) { return ISTHMUS_VERSION_STRING; }

int isthmus__extent_ok(int64_t rows, int64_t ld) {
    if (rows <= 0 || ld <= 0) return 0;
    return ld <= ISTHMUS_MAX_ELEMS / rows;
}

void *isthmus__aligned_alloc(size_t bytes) {
    void *p = NULL;
    if (bytes == 0) bytes = 64;
    if (posix_memalign(&p, 64, bytes) != 0) return NULL;
    return p;
}

void isthmus__aligned_free(void *p) { free(p); }
