#include "api/error.h"

#include <errno.h>
#include <stdio.h>

#include "common/util.h"

static const struct {
    const char *name;
    int status;
} codes[] = {
#define X(name, status) {#name, status},
    API_ERRORS(X)
#undef X
};

static const char *const snake_names[] = {
    "ok",          "bad_request",     "unauthorized", "not_found",   "method_not_allowed",
    "conflict",    "too_large",       "internal",     "bad_gateway", "no_leader",
    "unavailable", "gateway_timeout",
};

_Static_assert(ARRAY_SIZE(snake_names) == ARRAY_SIZE(codes), "one snake name per code");

int api_code_status(enum api_code code)
{
    return codes[code].status;
}

const char *api_code_name(enum api_code code)
{
    return snake_names[code];
}

int api_err_vset(struct api_err *err, enum api_code code, const char *field, const char *fmt,
                 va_list ap)
{
    err->code = code;
    common_strlcpy(err->field, field ? field : "", sizeof(err->field));
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    switch (code) {
    case API_NOT_FOUND:
        return -ENOENT;
    case API_CONFLICT:
        return -EEXIST;
    case API_TOO_LARGE:
        return -E2BIG;
    case API_UNAUTHORIZED:
        return -EACCES;
    case API_NO_LEADER:
    case API_UNAVAILABLE:
        return -EAGAIN;
    case API_BAD_GATEWAY:
        return -EHOSTUNREACH;
    case API_GATEWAY_TIMEOUT:
        return -ETIMEDOUT;
    case API_INTERNAL:
        return -EIO;
    default:
        return -EINVAL;
    }
}

int api_err_set(struct api_err *err, enum api_code code, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rv = api_err_vset(err, code, field, fmt, ap);
    va_end(ap);
    return rv;
}
