#include "common/units.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"

#define MS_PER_S        INT64_C(1000)
#define MS_PER_M        (60 * MS_PER_S)
#define MS_PER_H        (60 * MS_PER_M)
#define MAX_DURATION_MS (10 * 365 * 24 * MS_PER_H)
#define MAX_SIZE        (INT64_C(1) << 50)
/* Fraction digits that count; further ones are checked and ignored. Six keep
 * frac * unit below 2^63 for every unit (at most 2^40 for "t"). */
#define MAX_FRACTION_DIGITS 6

/* A decimal number "12", "1.5", ".5" or "2." as read from text. */
struct decimal {
    uint64_t integer;
    uint64_t frac;  /* fraction digits as an integer */
    uint64_t scale; /* 10^(number of fraction digits kept) */
};

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Reads a decimal number at *s and advances *s past it. The integer part must
 * not exceed max. Returns 0, or -EINVAL when there is no digit or it is too
 * large. */
static int parse_decimal(const char **s, uint64_t max, struct decimal *d)
{
    const char *p = *s;
    size_t digits = 0;
    *d = (struct decimal){.scale = 1};
    for (; is_digit(*p); p++, digits++) {
        d->integer = d->integer * 10 + (uint64_t)(*p - '0');
        if (d->integer > max)
            return -EINVAL;
    }
    if (*p == '.') {
        if (!is_digit(p[1]))
            return -EINVAL;
        for (p++; is_digit(*p); p++, digits++) {
            if (d->scale < 1000000) {
                d->frac = d->frac * 10 + (uint64_t)(*p - '0');
                d->scale *= 10;
            }
        }
    }
    if (digits == 0)
        return -EINVAL;
    *s = p;
    return 0;
}

/* Returns d * unit, or -1 when it exceeds max. */
static int64_t decimal_scale(const struct decimal *d, uint64_t unit, uint64_t max)
{
    if (d->integer > max / unit)
        return -1;
    uint64_t v = d->integer * unit + d->frac * unit / d->scale;
    return v > max ? -1 : (int64_t)v;
}

static const struct {
    const char *name;
    int64_t ms;
} duration_units[] = {
    /* "ms" before "m" so that the longest unit matches first. */
    {"ms", 1},
    {"s", MS_PER_S},
    {"m", MS_PER_M},
    {"h", MS_PER_H},
};

static int64_t duration_unit(const char **s)
{
    for (size_t i = 0; i < ARRAY_SIZE(duration_units); i++) {
        size_t n = strlen(duration_units[i].name);
        if (strncmp(*s, duration_units[i].name, n) == 0) {
            *s += n;
            return duration_units[i].ms;
        }
    }
    return -1;
}

int common_parse_duration(const char *s, int64_t *ms)
{
    if (!s || !*s)
        return -EINVAL;
    if (strcmp(s, "0") == 0) {
        *ms = 0;
        return 0;
    }
    int64_t total = 0;
    while (*s) {
        struct decimal d;
        if (parse_decimal(&s, MAX_DURATION_MS, &d) < 0)
            return -EINVAL;
        int64_t unit = duration_unit(&s);
        if (unit < 0)
            return -EINVAL;
        int64_t v = decimal_scale(&d, (uint64_t)unit, MAX_DURATION_MS);
        if (v < 0 || v > MAX_DURATION_MS - total)
            return -EINVAL;
        total += v;
    }
    *ms = total;
    return 0;
}

void common_format_duration(int64_t ms, char *out, size_t out_size)
{
    static const struct {
        const char *suffix;
        uint64_t ms;
    } groups[] = {{"h", MS_PER_H}, {"m", MS_PER_M}, {"s", MS_PER_S}, {"ms", 1}};
    size_t off = 0;
    uint64_t rest;

    if (out_size == 0)
        return;
    out[0] = '\0';
    if (ms == 0) {
        snprintf(out, out_size, "0s");
        return;
    }
    if (ms < 0) {
        snprintf(out, out_size, "-");
        off = 1;
        rest = (uint64_t)0 - (uint64_t)ms;
    } else {
        rest = (uint64_t)ms;
    }
    for (size_t i = 0; i < ARRAY_SIZE(groups) && off < out_size; i++) {
        uint64_t n = rest / groups[i].ms;
        rest %= groups[i].ms;
        if (n == 0)
            continue;
        int w =
            snprintf(out + off, out_size - off, "%llu%s", (unsigned long long)n, groups[i].suffix);
        if (w < 0)
            return;
        off += (size_t)w;
    }
}

/* Multiplier for a size suffix letter, or 0 when c is not one. */
static uint64_t size_multiplier(char c)
{
    static const char letters[] = "bkmgt";
    const char *p = c ? strchr(letters, c | 0x20) : NULL;
    return p ? UINT64_C(1) << (10 * (p - letters)) : 0;
}

int common_parse_size(const char *s, int64_t *bytes)
{
    struct decimal d;
    uint64_t mult = 1;

    if (!s || parse_decimal(&s, MAX_SIZE, &d) < 0)
        return -EINVAL;
    if (*s) {
        mult = size_multiplier(*s++);
        if (mult == 0)
            return -EINVAL;
        /* "k", "kb" or "kib" (any case); a plain "b" takes nothing more. */
        if (*s && (mult == 1 || (strcasecmp(s, "b") != 0 && strcasecmp(s, "ib") != 0)))
            return -EINVAL;
    }
    /* A number of bytes has no fraction. */
    if (mult == 1 && d.scale > 1)
        return -EINVAL;
    int64_t v = decimal_scale(&d, mult, MAX_SIZE);
    if (v < 0)
        return -EINVAL;
    *bytes = v;
    return 0;
}
