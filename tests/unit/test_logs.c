/* Unit tests for agent/logs: reading a task's log files back from a cursor,
 * across rotations, with tail, since and the byte budget, and a node's
 * answer for several tasks. Files are written here in the monitor's format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/logs.h"
#include "agent/node.h"
#include "common/util.h"

struct fixture {
    char dir[256];  /* the task's dir */
    char root[256]; /* what the test removes */
};

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    snprintf(f->root, sizeof(f->root), "/tmp/shoal-test-logs-XXXXXX");
    if (!mkdtemp(f->root))
        return -1;
    snprintf(f->dir, sizeof(f->dir), "%s/tasks", f->root);
    mkdir(f->dir, 0700);
    snprintf(f->dir, sizeof(f->dir), "%s/tasks/t1", f->root);
    mkdir(f->dir, 0700);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
    int rv = system(cmd);
    free(f);
    return rv == 0 ? 0 : -1;
}

static void path_of(const struct fixture *f, const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", f->dir, name);
}

/* The monitor's entry for number i: second i of the day, stdout unless i is
 * a multiple of 5. */
static void stamp(int i, char *out)
{
    snprintf(out, 31, "2026-01-01T%02d:%02d:%02d.%09dZ", i / 3600, i / 60 % 60, i % 60, i);
}

static void append_raw(const struct fixture *f, const char *name, const char *text)
{
    char path[300];
    path_of(f, name, path, sizeof(path));
    FILE *fp = fopen(path, "a");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* Appends entries first .. first+count-1 to file name. */
static void append(const struct fixture *f, const char *name, int first, int count)
{
    for (int i = first; i < first + count; i++) {
        char ts[32], line[128];
        stamp(i, ts);
        snprintf(line, sizeof(line), "%s %s line %d\n", ts, i % 5 == 0 ? "stderr" : "stdout", i);
        append_raw(f, name, line);
    }
}

/* The monitor's rotation with max_files files. */
static void rotate(const struct fixture *f, unsigned max_files)
{
    char from[300], to[300], a[16], b[16];
    for (unsigned i = max_files - 1; i >= 2; i--) {
        snprintf(a, sizeof(a), "log.%u", i - 1);
        snprintf(b, sizeof(b), "log.%u", i);
        path_of(f, a, from, sizeof(from));
        path_of(f, b, to, sizeof(to));
        rename(from, to);
    }
    path_of(f, "log", from, sizeof(from));
    path_of(f, "log.1", to, sizeof(to));
    rename(from, to);
    int fd = open(from, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
    assert_true(fd >= 0);
    close(fd);
}

struct got {
    json_t *entries;
    struct agent_logs_result res;
    int rv;
};

static struct got read_logs(const struct fixture *f, const char *cursor, int64_t tail,
                            const char *since, size_t budget)
{
    struct got g = {.entries = json_array()};
    struct agent_logs_opts o = {
        .cursor = cursor, .tail = tail, .since = since, .budget = budget ? budget : 1 << 20};
    g.rv = agent_logs_read(f->dir, &o, g.entries, &g.res);
    return g;
}

/* Checks that g holds entries first .. first+count-1, in order. */
static void expect(const struct got *g, int first, int count)
{
    assert_int_equal(g->rv, 0);
    if ((int)json_array_size(g->entries) != count) {
        char *text = json_dumps(g->entries, 0);
        fail_msg("expected %d entries from %d, got %zu: %s", count, first,
                 json_array_size(g->entries), text);
    }
    for (int i = 0; i < count; i++) {
        json_t *e = json_array_get(g->entries, (size_t)i);
        char ts[32], line[32];
        stamp(first + i, ts);
        snprintf(line, sizeof(line), "line %d", first + i);
        assert_string_equal(json_string_value(json_object_get(e, "ts")), ts);
        assert_string_equal(json_string_value(json_object_get(e, "line")), line);
        assert_string_equal(json_string_value(json_object_get(e, "stream")),
                            (first + i) % 5 == 0 ? "stderr" : "stdout");
    }
}

static void got_free(struct got *g)
{
    json_decref(g->entries);
}

static void test_read_and_follow(void **state)
{
    struct fixture *f = *state;
    append(f, "log", 0, 3);
    struct got g = read_logs(f, NULL, -1, NULL, 0);
    expect(&g, 0, 3);
    char cursor[AGENT_LOGS_CURSOR_SIZE];
    strcpy(cursor, g.res.cursor);
    got_free(&g);

    g = read_logs(f, cursor, -1, NULL, 0); /* nothing new */
    expect(&g, 0, 0);
    assert_string_equal(g.res.cursor, cursor);
    got_free(&g);

    append(f, "log", 3, 2);
    g = read_logs(f, cursor, 1, NULL, 0); /* the tail does not apply with a cursor */
    expect(&g, 3, 2);
    got_free(&g);
}

static void test_partial_last_line(void **state)
{
    struct fixture *f = *state;
    append(f, "log", 0, 2);
    char ts[32], text[64];
    stamp(2, ts);
    snprintf(text, sizeof(text), "%s stdout line", ts);
    append_raw(f, "log", text); /* being written */
    struct got g = read_logs(f, NULL, -1, NULL, 0);
    expect(&g, 0, 2);
    char cursor[AGENT_LOGS_CURSOR_SIZE];
    strcpy(cursor, g.res.cursor);
    got_free(&g);

    g = read_logs(f, NULL, 5, NULL, 0); /* tail ignores it too */
    expect(&g, 0, 2);
    got_free(&g);

    append_raw(f, "log", " 2\n");
    g = read_logs(f, cursor, -1, NULL, 0);
    expect(&g, 2, 1);
    got_free(&g);
}

static void test_cursor_across_rotation(void **state)
{
    struct fixture *f = *state;
    append(f, "log", 0, 10);
    struct got g = read_logs(f, NULL, -1, NULL, 0);
    expect(&g, 0, 10);
    char cursor[AGENT_LOGS_CURSOR_SIZE];
    strcpy(cursor, g.res.cursor);
    got_free(&g);

    /* More lines, then two rotations: the cursor's file is now log.2. */
    append(f, "log", 10, 2);
    rotate(f, 5);
    append(f, "log", 12, 3);
    rotate(f, 5);
    append(f, "log", 15, 1);
    g = read_logs(f, cursor, -1, NULL, 0);
    expect(&g, 10, 6);
    strcpy(cursor, g.res.cursor);
    got_free(&g);

    /* At the end of log, which rotates before anything new comes. */
    rotate(f, 5);
    append(f, "log", 16, 2);
    g = read_logs(f, cursor, -1, NULL, 0);
    expect(&g, 16, 2);
    got_free(&g);
}

static void test_cursor_rotated_out(void **state)
{
    struct fixture *f = *state;
    append(f, "log", 0, 4);
    struct got g = read_logs(f, NULL, -1, NULL, 0);
    char cursor[AGENT_LOGS_CURSOR_SIZE];
    strcpy(cursor, g.res.cursor);
    got_free(&g);
    /* With 2 files, two rotations drop the cursor's file (kept open here
     * so that no new file gets its inode). */
    char path[300];
    path_of(f, "log", path, sizeof(path));
    int keep = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(keep >= 0);
    rotate(f, 2);
    append(f, "log", 4, 2);
    rotate(f, 2);
    append(f, "log", 6, 2);
    g = read_logs(f, cursor, -1, NULL, 0);
    expect(&g, 4, 4); /* from the oldest file left */
    got_free(&g);
    close(keep);
}

static void test_emptied_file(void **state)
{
    struct fixture *f = *state;
    append(f, "log", 0, 4);
    struct got g = read_logs(f, NULL, -1, NULL, 0);
    char cursor[AGENT_LOGS_CURSOR_SIZE];
    strcpy(cursor, g.res.cursor);
    got_free(&g);
    /* A log kept in one file is emptied in place (same inode). */
    char path[300];
    path_of(f, "log", path, sizeof(path));
    assert_int_equal(truncate(path, 0), 0);
    append(f, "log", 4, 1);
    g = read_logs(f, cursor, -1, NULL, 0);
    expect(&g, 4, 1);
    strcpy(cursor, g.res.cursor);
    got_free(&g);
    /* Emptied and written past the old offset: not after a newline. */
    assert_int_equal(truncate(path, 0), 0);
    append_raw(f, "log", "junk that is not an entry\n");
    append(f, "log", 5, 3);
    g = read_logs(f, cursor, -1, NULL, 0);
    expect(&g, 5, 3);
    got_free(&g);
}

static void test_tail(void **state)
{
    struct fixture *f = *state;
    append(f, "log", 0, 5);
    rotate(f, 3);
    append(f, "log", 5, 3);
    struct got g = read_logs(f, NULL, 2, NULL, 0);
    expect(&g, 6, 2);
    got_free(&g);
    g = read_logs(f, NULL, 5, NULL, 0); /* across the rotated file */
    expect(&g, 3, 5);
    got_free(&g);
    g = read_logs(f, NULL, 100, NULL, 0);
    expect(&g, 0, 8);
    got_free(&g);
    g = read_logs(f, NULL, 0, NULL, 0);
    expect(&g, 0, 0);
    char cursor[AGENT_LOGS_CURSOR_SIZE];
    strcpy(cursor, g.res.cursor);
    got_free(&g);
    append(f, "log", 8, 1);
    g = read_logs(f, cursor, -1, NULL, 0);
    expect(&g, 8, 1);
    got_free(&g);
    /* An empty newest file: the tail comes from the older one. */
    rotate(f, 3);
    g = read_logs(f, NULL, 2, NULL, 0);
    expect(&g, 7, 2);
    got_free(&g);
}

static void test_since(void **state)
{
    struct fixture *f = *state;
    append(f, "log", 0, 5);
    rotate(f, 4);
    append(f, "log", 5, 5);
    rotate(f, 4);
    append(f, "log", 10, 5);
    char since[32];
    stamp(7, since);
    struct got g = read_logs(f, NULL, -1, since, 0);
    expect(&g, 7, 8);
    got_free(&g);
    stamp(12, since);
    g = read_logs(f, NULL, -1, since, 0);
    expect(&g, 12, 3);
    got_free(&g);
    stamp(100, since); /* after everything: nothing, and a cursor at the end */
    g = read_logs(f, NULL, -1, since, 0);
    expect(&g, 0, 0);
    char cursor[AGENT_LOGS_CURSOR_SIZE];
    strcpy(cursor, g.res.cursor);
    got_free(&g);
    append(f, "log", 15, 1);
    g = read_logs(f, cursor, -1, NULL, 0);
    expect(&g, 15, 1);
    got_free(&g);
    /* since and tail: the last 2 of those at or after since, or fewer. */
    stamp(3, since);
    g = read_logs(f, NULL, 2, since, 0);
    expect(&g, 14, 2);
    got_free(&g);
    stamp(15, since);
    g = read_logs(f, NULL, 4, since, 0);
    expect(&g, 15, 1);
    got_free(&g);
    g = read_logs(f, NULL, -1, "2026-01-01", 0);
    assert_int_equal(g.rv, -EINVAL);
    got_free(&g);
}

static void test_budget(void **state)
{
    struct fixture *f = *state;
    append(f, "log", 0, 6);
    rotate(f, 3);
    append(f, "log", 6, 6);
    /* Each entry's line is 46 or 47 bytes: 100 bytes hold two. */
    char cursor[AGENT_LOGS_CURSOR_SIZE] = "";
    int next = 0;
    for (int round = 0; round < 6; round++) {
        struct got g = read_logs(f, cursor[0] ? cursor : NULL, -1, NULL, 100);
        expect(&g, next, 2);
        assert_int_equal(g.res.cut, round < 5);
        strcpy(cursor, g.res.cursor);
        next += 2;
        got_free(&g);
    }
    /* One entry comes whatever the budget. */
    struct got g = read_logs(f, NULL, -1, NULL, 1);
    expect(&g, 0, 1);
    assert_true(g.res.cut);
    got_free(&g);
}

/* Files larger than the reader's windows and chunks. */
static void test_large(void **state)
{
    struct fixture *f = *state;
    char path[300];
    path_of(f, "log", path, sizeof(path));
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 12000; i++) {
        char ts[32];
        stamp(i, ts);
        fprintf(fp, "%s %s line %d\n", ts, i % 5 == 0 ? "stderr" : "stdout", i);
    }
    fclose(fp);
    struct got g = read_logs(f, NULL, 7000, NULL, 0);
    expect(&g, 5000, 7000);
    got_free(&g);
    g = read_logs(f, NULL, -1, NULL, 0);
    expect(&g, 0, 12000);
    got_free(&g);
    char since[32];
    stamp(1234, since);
    g = read_logs(f, NULL, 9000, since, 0);
    expect(&g, 3000, 9000);
    got_free(&g);
    g = read_logs(f, NULL, 11000, since, 0);
    expect(&g, 1234, 12000 - 1234);
    got_free(&g);
}

static void test_missing_and_malformed(void **state)
{
    struct fixture *f = *state;
    struct got g = read_logs(f, NULL, -1, NULL, 0); /* a dir without log files */
    assert_int_equal(g.rv, -ENOENT);
    got_free(&g);
    append_raw(f, "log.x", "junk\n");
    append_raw(f, "log.01", "junk\n");
    g = read_logs(f, NULL, -1, NULL, 0);
    assert_int_equal(g.rv, -ENOENT);
    got_free(&g);
    struct fixture other = *f;
    strcat(other.dir, "-gone");
    g = read_logs(&other, NULL, -1, NULL, 0);
    assert_int_equal(g.rv, -ENOENT);
    got_free(&g);

    append(f, "log", 0, 1);
    static const char *const bad[] = {"",     "12",   "12:",  ":5",  "-1:5",
                                      "1:-5", "1:5x", " 1:5", "+1:5"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        g = read_logs(f, bad[i], -1, NULL, 0);
        if (g.rv != -EINVAL)
            fail_msg("cursor \"%s\": got %d", bad[i], g.rv);
        got_free(&g);
    }
    /* Lines that are not entries are skipped; bad UTF-8 is replaced. */
    append_raw(f, "log", "garbage\n2026-01-01T00:00:01.000000001Z stdnot x\n");
    append_raw(f, "log",
               "2026-01-01T00:00:02.000000002Z stdout a\xff"
               "b\n2026-01-01T00:00:03.000000003Z stderr\n");
    g = read_logs(f, NULL, -1, NULL, 0);
    assert_int_equal(g.rv, 0);
    assert_int_equal(json_array_size(g.entries), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(g.entries, 1), "line")),
                        "a\xEF\xBF\xBD"
                        "b");
    assert_string_equal(json_string_value(json_object_get(json_array_get(g.entries, 2), "line")),
                        "");
    got_free(&g);
}

static void test_node_query(void **state)
{
    struct fixture *f = *state;
    struct agent_node node = {0};
    snprintf(node.data_dir, sizeof(node.data_dir), "%s", f->root);
    /* t1: entries 0, 2, 4 ...; t2: 1, 3, 5 ... */
    struct fixture f2 = *f;
    snprintf(f2.dir, sizeof(f2.dir), "%s/tasks/t2", f->root);
    mkdir(f2.dir, 0700);
    for (int i = 0; i < 6; i++)
        append(i % 2 ? &f2 : f, "log", i, 1);
    json_t *q =
        json_pack("{s:{s:n, s:n, s:n, s:n}, s:i}", "tasks", "t1", "t2", "t3", "../x", "tail", 2);
    json_t *ans = NULL;
    char errmsg[256] = "";
    assert_int_equal(agent_logs_query(&node, q, &ans, errmsg), 0);
    json_t *entries = json_object_get(ans, "entries");
    assert_int_equal(json_array_size(entries), 4);
    static const struct {
        const char *task;
        int n;
    } want[] = {{"t1", 2}, {"t2", 3}, {"t1", 4}, {"t2", 5}};
    for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
        json_t *e = json_array_get(entries, i);
        char line[32];
        snprintf(line, sizeof(line), "line %d", want[i].n);
        assert_string_equal(json_string_value(json_object_get(e, "task")), want[i].task);
        assert_string_equal(json_string_value(json_object_get(e, "line")), line);
    }
    assert_int_equal(json_object_size(json_object_get(ans, "cursors")), 2);
    json_t *missing = json_object_get(ans, "missing");
    assert_int_equal(json_array_size(missing), 2);
    assert_string_equal(json_string_value(json_array_get(missing, 0)), "t3");
    assert_string_equal(json_string_value(json_array_get(missing, 1)), "../x");
    assert_false(json_is_true(json_object_get(ans, "more")));

    /* With the cursors answered, then a budget that cuts. */
    json_t *next =
        json_pack("{s:O, s:i}", "tasks", json_object_get(ans, "cursors"), "max_bytes", 2);
    append(f, "log", 6, 2);
    json_decref(ans);
    assert_int_equal(agent_logs_query(&node, next, &ans, errmsg), 0);
    entries = json_object_get(ans, "entries");
    assert_int_equal(json_array_size(entries), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(entries, 0), "line")),
                        "line 6");
    assert_true(json_is_true(json_object_get(ans, "more")));
    json_decref(ans);
    json_decref(next);
    json_decref(q);

    json_t *bad = json_object();
    assert_int_equal(agent_logs_query(&node, bad, &ans, errmsg), -EINVAL);
    json_decref(bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_and_follow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_last_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cursor_across_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cursor_rotated_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_emptied_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_since, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_and_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_query, setup, teardown),
    };
    return cmocka_run_group_tests_name("logs", tests, NULL, NULL);
}
