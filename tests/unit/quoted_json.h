/* JSON in the unit tests' tables is written with ' for " to stay readable:
 * this parses it (NULL gives NULL; a malformed text fails the test).
 * Included by tests/unit/test_*.c only, after cmocka.h. */
#ifndef SHOAL_TESTS_QUOTED_JSON_H
#define SHOAL_TESTS_QUOTED_JSON_H

#include <jansson.h>

#include "common/util.h"

static inline json_t *parse(const char *quoted)
{
    if (!quoted)
        return NULL;
    _cleanup_free_ char *text = xstrdup(quoted);
    for (char *p = text; *p; p++)
        if (*p == '\'')
            *p = '"';
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (!j)
        fail_msg("bad test JSON %s: %s", quoted, jerr.text);
    return j;
}

#endif
