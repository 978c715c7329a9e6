/* Unit tests for common/units: durations and sizes, parsed and formatted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "common/units.h"
#include "common/util.h"

static const struct {
    const char *text;
    int64_t ms;
} good_durations[] = {
    {"0", 0},
    {"0s", 0},
    {"0ms", 0},
    {"250ms", 250},
    {"5s", 5000},
    {"1m30s", 90000},
    {"1.5s", 1500},
    {"0.5s", 500},
    {".5s", 500},
    {"2h", 7200000},
    {"1h5s", 3605000},
    {"1h0m5s", 3605000},
    {"90s", 90000},
    {"10m", 600000},
    {"1.5h", 5400000},
    {"1s500ms", 1500},
    {"1.0000009s", 1000},
    {"87600h", INT64_C(315360000000)},
};

static const char *const bad_durations[] = {
    "",     " 5s",   "5s ", "5",     "-5s", "+5s",    "5 s",
    "5S",   "1e3s",  "s",   "5x",    "1.",  "1.s",    ".s",
    "5sec", "ms",    "1d",  "0x10s", "5s5", "87601h", "99999999999999999h",
    ".",    "1..5s", "1m-", "0.0",   "00",  "1µs",    "\t1s",
    "5s\n",
};

static void test_parse_duration(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(good_durations); i++) {
        int64_t ms = -1;
        if (common_parse_duration(good_durations[i].text, &ms) != 0)
            fail_msg("\"%s\" refused", good_durations[i].text);
        if (ms != good_durations[i].ms)
            fail_msg("\"%s\" gave %lld, expected %lld", good_durations[i].text, (long long)ms,
                     (long long)good_durations[i].ms);
    }
    for (size_t i = 0; i < ARRAY_SIZE(bad_durations); i++) {
        int64_t ms = -1;
        if (common_parse_duration(bad_durations[i], &ms) != -EINVAL)
            fail_msg("\"%s\" accepted", bad_durations[i]);
        assert_int_equal(ms, -1);
    }
    assert_int_equal(common_parse_duration(NULL, &(int64_t){0}), -EINVAL);
}

static const struct {
    int64_t ms;
    const char *text;
} formats[] = {
    {0, "0s"},
    {1, "1ms"},
    {250, "250ms"},
    {1000, "1s"},
    {1500, "1s500ms"},
    {5000, "5s"},
    {60000, "1m"},
    {90000, "1m30s"},
    {600000, "10m"},
    {3600000, "1h"},
    {3605000, "1h5s"},
    {7200000, "2h"},
    {3661001, "1h1m1s1ms"},
    {INT64_C(315360000000), "87600h"},
    {-1500, "-1s500ms"},
};

static void test_format_duration(void **state)
{
    (void)state;
    char out[32];
    for (size_t i = 0; i < ARRAY_SIZE(formats); i++) {
        common_format_duration(formats[i].ms, out, sizeof(out));
        assert_string_equal(out, formats[i].text);
        /* What is formatted parses back to the same value. */
        int64_t ms = -1;
        if (formats[i].ms >= 0) {
            assert_int_equal(common_parse_duration(out, &ms), 0);
            assert_int_equal(ms, formats[i].ms);
        }
    }
}

static void test_format_duration_truncates(void **state)
{
    (void)state;
    char out[4] = "xxx";
    common_format_duration(3661001, out, sizeof(out));
    assert_string_equal(out, "1h1");
    common_format_duration(3661001, out, 1);
    assert_string_equal(out, "");
    common_format_duration(INT64_MIN, out, sizeof(out));
    assert_int_equal(out[0], '-');
    common_format_duration(5000, out, 0); /* writes nothing */
}

static const struct {
    const char *text;
    int64_t bytes;
} good_sizes[] = {
    {"0", 0},
    {"1024", 1024},
    {"64M", 67108864},
    {"64m", 67108864},
    {"64MB", 67108864},
    {"64MiB", 67108864},
    {"1.5g", 1610612736},
    {"1.5G", 1610612736},
    {"512kb", 524288},
    {"1KiB", 1024},
    {"1kib", 1024},
    {"1k", 1024},
    {"10b", 10},
    {"10B", 10},
    {"0.5k", 512},
    {"1.3k", 1331},
    {"2t", INT64_C(2199023255552)},
    {"1024t", INT64_C(1) << 50},
    {"1125899906842624", INT64_C(1) << 50},
};

static const char *const bad_sizes[] = {
    "",
    "-1",
    "10x",
    "1e3",
    " 1",
    "1 ",
    "1 k",
    "k",
    "1.5",
    "1.",
    ".",
    "1bb",
    "1bib",
    "1kbb",
    "1kibb",
    "1ki",
    "1i",
    "1.5b",
    "1p",
    "+1",
    "0x10",
    "1025t",
    "1024.1t",
    "1125899906842625",
    "99999999999999999999",
    "1\tk",
    "1k\n",
    "1..5k",
    "1,5k",
};

static void test_parse_size(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(good_sizes); i++) {
        int64_t b = -1;
        if (common_parse_size(good_sizes[i].text, &b) != 0)
            fail_msg("\"%s\" refused", good_sizes[i].text);
        if (b != good_sizes[i].bytes)
            fail_msg("\"%s\" gave %lld, expected %lld", good_sizes[i].text, (long long)b,
                     (long long)good_sizes[i].bytes);
    }
    for (size_t i = 0; i < ARRAY_SIZE(bad_sizes); i++) {
        int64_t b = -1;
        if (common_parse_size(bad_sizes[i], &b) != -EINVAL)
            fail_msg("\"%s\" accepted", bad_sizes[i]);
        assert_int_equal(b, -1);
    }
    assert_int_equal(common_parse_size(NULL, &(int64_t){0}), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_format_duration),
        cmocka_unit_test(test_format_duration_truncates),
        cmocka_unit_test(test_parse_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
