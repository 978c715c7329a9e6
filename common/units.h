/* Durations ("250ms", "5s", "1m30s", "2h") and sizes ("64M", "1.5G", 1024)
 * parsed from and formatted to their canonical strings. */
#ifndef SHOAL_COMMON_UNITS_H
#define SHOAL_COMMON_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* Parses a duration: one or more <number><unit> groups, units ms, s, m, h
 * (Go style, e.g. "1m30s", "0.5s", "250ms"), or "0". Negative values and
 * values above 10 years are refused. Returns 0 or -EINVAL. */
int common_parse_duration(const char *s, int64_t *ms);

/* Formats ms canonically into out: "0s", "250ms", "5s", "1m30s", "2h",
 * "1h0m5s" is written "1h5s" (zero groups are left out), fractions of a
 * second below one second as "NNNms", above as "1s500ms". */
void common_format_duration(int64_t ms, char *out, size_t out_size);

/* Parses a size: an integer number of bytes, or a number with a suffix
 * b, k, m, g, t (case-insensitive, optionally followed by "b" or "ib"; all
 * are powers of 1024), e.g. "64M", "1.5g", "512kb". Refuses negative values
 * and values above 1 PiB. Returns 0 or -EINVAL. */
int common_parse_size(const char *s, int64_t *bytes);

#endif
