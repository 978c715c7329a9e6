/* API errors: one table of error codes with their HTTP status, and the error
 * value that validation, the store and the routes fill in and the HTTP layer
 * answers as {"error": "...", "code": "...", "field": "..."}. */
#ifndef SHOAL_API_ERROR_H
#define SHOAL_API_ERROR_H

#include <stdarg.h>

/* X(name, http status) */
#define API_ERRORS(X)                                                                              \
    X(OK, 200)                                                                                     \
    X(BAD_REQUEST, 400)                                                                            \
    X(UNAUTHORIZED, 401)                                                                           \
    X(NOT_FOUND, 404)                                                                              \
    X(METHOD_NOT_ALLOWED, 405)                                                                     \
    X(CONFLICT, 409)                                                                               \
    X(TOO_LARGE, 413)                                                                              \
    X(INTERNAL, 500)                                                                               \
    X(BAD_GATEWAY, 502)                                                                            \
    X(NO_LEADER, 503)                                                                              \
    X(UNAVAILABLE, 503)                                                                            \
    X(GATEWAY_TIMEOUT, 504)

enum api_code {
#define X(name, status) API_##name,
    API_ERRORS(X)
#undef X
};

struct api_err {
    enum api_code code;
    char field[128]; /* JSON path of the offending field, "" when none */
    char msg[256];   /* human words, without the field name repeated */
};

/* HTTP status for a code. */
int api_code_status(enum api_code code);
/* Lower-case snake name of a code ("bad_request"). */
const char *api_code_name(enum api_code code);

/* Fills *err and returns -EINVAL (or -ENOENT, -EEXIST ... by code), so that a
 * validator can `return api_err_set(err, API_BAD_REQUEST, "task.command",
 * "must be a non-empty list of strings");`. field may be NULL. */
int api_err_set(struct api_err *err, enum api_code code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int api_err_vset(struct api_err *err, enum api_code code, const char *field, const char *fmt,
                 va_list ap) __attribute__((format(printf, 4, 0)));

#endif
