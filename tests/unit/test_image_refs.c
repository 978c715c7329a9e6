/* Unit tests for the image refs of api/images.c: the {ref-or-id} path
 * segment decoded and checked, and encoded again for the node a manager
 * asks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "api/images_internal.h"
#include "common/util.h"

static const struct {
    const char *segment;
    const char *ref; /* NULL: refused */
} decodes[] = {
    {"busybox%3Alatest", "busybox:latest"},
    {"127.0.0.1%3A5000%2Fweb%3A1", "127.0.0.1:5000/web:1"},
    {"busybox:latest", "busybox:latest"},
    {"sha256%3Aabc", "sha256:abc"},
    {"1f0b4c2d9e8a", "1f0b4c2d9e8a"},
    {"a%2fb", "a/b"},
    {"", NULL},
    {"-rf", NULL},
    {"%2Drf", NULL},
    {"a%00b", NULL},
    {"a%zzb", NULL},
    {"a%4", NULL},
    {"a%", NULL},
};

static void test_decode(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(decodes); i++) {
        char ref[512];
        struct api_err err = {0};
        int rv = api__image_ref_decode(decodes[i].segment, ref, sizeof(ref), &err);
        if (decodes[i].ref) {
            assert_int_equal(rv, 0);
            assert_string_equal(ref, decodes[i].ref);
        } else {
            assert_int_equal(rv, -EINVAL);
            assert_int_equal(err.code, API_BAD_REQUEST);
            assert_non_null(strstr(err.msg, "is not an image ref or id"));
        }
    }
}

static void test_encode_round_trip(void **state)
{
    (void)state;
    static const char *const refs[] = {"busybox:latest", "127.0.0.1:5000/team/web:1.2_3-4~x",
                                       "registry.local/web@sha256:0123abcd", "a b%c?d#e"};
    for (size_t i = 0; i < ARRAY_SIZE(refs); i++) {
        char enc[256], back[256];
        struct api_err err = {0};
        assert_int_equal(api__image_ref_encode(refs[i], enc, sizeof(enc)), 0);
        assert_null(strpbrk(enc, ":/@ ?#"));
        assert_int_equal(api__image_ref_decode(enc, back, sizeof(back), &err), 0);
        assert_string_equal(back, refs[i]);
    }
    char enc[64];
    assert_int_equal(api__image_ref_encode("busybox:latest", enc, sizeof(enc)), 0);
    assert_string_equal(enc, "busybox%3Alatest");
}

static void test_encode_too_long(void **state)
{
    (void)state;
    char out[8];
    assert_int_equal(api__image_ref_encode("abcdefg", out, sizeof(out)), 0);
    assert_string_equal(out, "abcdefg");
    assert_int_equal(api__image_ref_encode("abcdefgh", out, sizeof(out)), -ENAMETOOLONG);
    assert_int_equal(api__image_ref_encode("abcde:", out, sizeof(out)), -ENAMETOOLONG);
    assert_int_equal(api__image_ref_encode("abcd:", out, sizeof(out)), 0);
    assert_string_equal(out, "abcd%3A");
}

static void test_decode_too_long(void **state)
{
    (void)state;
    char ref[8];
    struct api_err err = {0};
    assert_int_equal(api__image_ref_decode("abcdefg", ref, sizeof(ref), &err), 0);
    assert_int_equal(api__image_ref_decode("abcdefgh", ref, sizeof(ref), &err), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_encode_round_trip),
        cmocka_unit_test(test_encode_too_long),
        cmocka_unit_test(test_decode_too_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
