/* Unit tests for agent/images: the loop side of the image helper. A shell
 * script stands in for shoal-image (below this module only): it records
 * each run in a file, prints its arguments or a canned answer, and may
 * sleep or fail. Every loop run has a deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "agent/images.h"
#include "common/util.h"

#define WAIT_MS 10000u

/* The stand-in: "fail" in the args -> error; "sleep" -> a slow run; else an
 * image whose ref is the last argument, plus the arguments as "args". */
static const char script[] =
    "#!/bin/sh\n"
    "echo run >> \"$(dirname \"$0\")/runs\"\n"
    "for a in \"$@\"; do last=$a; done\n"
    "case \"$*\" in *sleep*) sleep 0.3;; esac\n"
    "case \"$*\" in *fail*) echo '{\"error\": \"boom: no such image\"}'; echo oops >&2; exit 1;; "
    "esac\n"
    "case \"$*\" in *hang*) sleep 30;; esac\n"
    "root=/r; case \"$*\" in *keep*) root=$(dirname \"$0\");; esac\n"
    "printf '{\"ref\": \"%s\", \"id\": \"sha256:aa\", \"digest\": \"sha256:bb\", "
    "\"rootfs\": \"%s\", \"config\": {\"Cmd\": [\"sh\"]}, \"args\": \"%s\"}\\n' \"$last\" "
    "\"$root\" \"$*\"\n";

struct fixture {
    uv_loop_t loop;
    char dir[64];
    char helper[128];
    struct agent_images *im;
};

struct result {
    int called;
    char ref[128];
    char err[256];
    char args[512];
};

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    char errmsg[256];
    strcpy(f->dir, "/tmp/shoal-test-images-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->helper, sizeof(f->helper), "%s/helper.sh", f->dir);
    FILE *fp = fopen(f->helper, "w");
    assert_non_null(fp);
    fputs(script, fp);
    fclose(fp);
    chmod(f->helper, 0755);
    uv_loop_init(&f->loop);
    char store[128];
    snprintf(store, sizeof(store), "%s/store", f->dir);
    const char *insecure[] = {"127.0.0.1:5000"};
    struct agent_images_config cfg = {store, insecure, 1, NULL, f->helper};
    assert_int_equal(agent_images_init(&f->im, &f->loop, &cfg, errmsg), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->im)
        agent_images_close(f->im);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static int runs(struct fixture *f)
{
    char path[128], line[16];
    int n = 0;
    snprintf(path, sizeof(path), "%s/runs", f->dir);
    FILE *fp = fopen(path, "r");
    while (fp && fgets(line, sizeof(line), fp))
        n++;
    if (fp)
        fclose(fp);
    return n;
}

static void got_image(void *data, const struct agent_image *img, const char *errmsg)
{
    struct result *r = data;
    r->called++;
    if (img) {
        common_strlcpy(r->ref, img->ref, sizeof(r->ref));
        assert_string_equal(img->id, "sha256:aa");
        assert_true(strcmp(img->rootfs, "/r") == 0 || strstr(img->rootfs, "shoal-test-images"));
        assert_non_null(json_object_get(img->config, "Cmd"));
    } else {
        common_strlcpy(r->err, errmsg, sizeof(r->err));
    }
}

static void got_answer(void *data, const json_t *answer, const char *errmsg)
{
    struct result *r = data;
    r->called++;
    if (answer)
        common_strlcpy(r->args, json_string_value(json_object_get(answer, "args")),
                       sizeof(r->args));
    else
        common_strlcpy(r->err, errmsg, sizeof(r->err));
}

static void stop_loop(uv_timer_t *t)
{
    uv_stop(t->loop);
}

/* Runs the loop until every result was called or the deadline. */
static void run_until(struct fixture *f, struct result *rs, size_t n)
{
    uv_timer_t guard;
    uv_timer_init(&f->loop, &guard);
    uv_timer_start(&guard, stop_loop, WAIT_MS, 0);
    for (;;) {
        size_t done = 0;
        for (size_t i = 0; i < n; i++)
            done += rs[i].called > 0;
        if (done == n || !uv_is_active((uv_handle_t *)&guard))
            break;
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void test_get_shares_one_run(void **state)
{
    struct fixture *f = *state;
    struct result r[3] = {0};
    agent_images_get(f->im, "127.0.0.1:5000/a:sleep", got_image, &r[0]);
    agent_images_get(f->im, "127.0.0.1:5000/a:sleep", got_image, &r[1]);
    agent_images_get(f->im, "127.0.0.1:5000/b:1", got_image, &r[2]);
    assert_int_equal(r[0].called + r[1].called + r[2].called, 0); /* never synchronously */
    run_until(f, r, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(r[i].called, 1);
    assert_string_equal(r[0].ref, "127.0.0.1:5000/a:sleep");
    assert_string_equal(r[1].ref, "127.0.0.1:5000/a:sleep");
    assert_string_equal(r[2].ref, "127.0.0.1:5000/b:1");
    assert_int_equal(runs(f), 2);
}

/* A pinned ref (by digest, or local) whose rootfs exists is answered from
 * memory the next time (still never synchronously); a registry tag is
 * resolved again; image rm empties the cache. */
static void test_get_caches_pinned_refs(void **state)
{
    struct fixture *f = *state;
    static const char *const refs[] = {"busybox:keep", "127.0.0.1:5000/a@sha256:keep",
                                       "127.0.0.1:5000/a:keep"};
    for (int round = 0; round < 2; round++) {
        struct result r[3] = {0};
        for (int i = 0; i < 3; i++)
            agent_images_get(f->im, refs[i], got_image, &r[i]);
        assert_int_equal(r[0].called + r[1].called + r[2].called, 0);
        run_until(f, r, 3);
        for (int i = 0; i < 3; i++) {
            assert_int_equal(r[i].called, 1);
            assert_string_equal(r[i].ref, refs[i]);
        }
        assert_int_equal(runs(f), round == 0 ? 3 : 4);
    }
    struct result rm = {0}, again = {0};
    const char *argv[] = {"rm", "x", NULL};
    agent_images_run(f->im, argv, got_answer, &rm);
    run_until(f, &rm, 1);
    agent_images_get(f->im, refs[0], got_image, &again);
    run_until(f, &again, 1);
    assert_int_equal(again.called, 1);
    assert_int_equal(runs(f), 6);
}

static void test_get_error(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    agent_images_get(f->im, "fail", got_image, &r);
    run_until(f, &r, 1);
    assert_int_equal(r.called, 1);
    assert_string_equal(r.err, "boom: no such image");
}

static json_t *in_use(void *data)
{
    (void)data;
    return json_pack("[s,s]", "sha256:k1", "sha256:k2");
}

static void test_run_passes_store_and_keeps(void **state)
{
    struct fixture *f = *state;
    struct result r[2] = {0};
    agent_images_set_in_use(f->im, in_use, NULL);
    const char *gc[] = {"gc", NULL}, *ls[] = {"ls", NULL};
    agent_images_run(f->im, gc, got_answer, &r[0]);
    agent_images_run(f->im, ls, got_answer, &r[1]);
    run_until(f, r, 2);
    assert_non_null(strstr(r[0].args, "gc --store "));
    assert_non_null(strstr(r[0].args, "--keep sha256:k1 --keep sha256:k2"));
    assert_null(strstr(r[1].args, "--keep"));
    assert_int_equal(runs(f), 2);
}

static void test_run_puts_operands_after_dashdash(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    const char *argv[] = {"inspect", "x", NULL};
    agent_images_run(f->im, argv, got_answer, &r);
    run_until(f, &r, 1);
    assert_non_null(strstr(r.args, "inspect --store "));
    assert_non_null(strstr(r.args, "-- x"));
}

static void test_close_with_pending(void **state)
{
    struct fixture *f = *state;
    struct result r[2] = {0};
    const char *argv[] = {"ls", "hang", NULL};
    agent_images_get(f->im, "127.0.0.1:5000/hang:1", got_image, &r[0]);
    agent_images_run(f->im, argv, got_answer, &r[1]);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    agent_images_close(f->im);
    f->im = NULL;
    assert_int_equal(r[0].called, 1);
    assert_int_equal(r[1].called, 1);
    assert_string_equal(r[0].err, "shutting down");
    assert_string_equal(r[1].err, "shutting down");
}

static void test_cancel(void **state)
{
    struct fixture *f = *state;
    struct result r[2] = {0};
    agent_images_get(f->im, "127.0.0.1:5000/a:sleep", got_image, &r[0]);
    agent_images_get(f->im, "127.0.0.1:5000/a:sleep", got_image, &r[1]);
    agent_images_cancel(f->im, &r[0]);
    run_until(f, &r[1], 1);
    assert_int_equal(r[0].called, 0);
    assert_int_equal(r[1].called, 1);
    assert_string_equal(r[1].ref, "127.0.0.1:5000/a:sleep");
}

static void test_missing_helper(void **state)
{
    struct fixture *f = *state;
    char errmsg[256], store[128];
    struct agent_images *im;
    snprintf(store, sizeof(store), "%s/store2", f->dir);
    struct agent_images_config cfg = {store, NULL, 0, NULL, "/nonexistent/shoal-image"};
    assert_int_equal(agent_images_init(&im, &f->loop, &cfg, errmsg), 0);
    struct result r = {0};
    agent_images_get(im, "x", got_image, &r);
    assert_int_equal(r.called, 0);
    run_until(f, &r, 1);
    assert_int_equal(r.called, 1);
    assert_non_null(strstr(r.err, "/nonexistent/shoal-image"));
    agent_images_close(im);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_shares_one_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_passes_store_and_keeps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_puts_operands_after_dashdash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_helper, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_caches_pinned_refs, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
