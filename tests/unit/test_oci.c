/* Unit tests for agent/oci: config.json from a task template and an image
 * config (program, env, cwd, user, secure defaults, mounts, resources,
 * network), capabilities, the seccomp conversion and user lookup inside a
 * rootfs (symlinks cannot leave it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/oci.h"
#include "api/error.h"
#include "api/spec.h"
#include "common/util.h"

static json_t *task_of(const char *task_json)
{
    char text[4096];
    snprintf(text, sizeof(text), "{\"name\": \"web\", \"task\": %s}", task_json);
    json_error_t e;
    json_t *in = json_loads(text, 0, &e);
    assert_non_null(in);
    json_t *out = NULL;
    struct api_err err = {0};
    int rv = api_spec_normalize(in, &out, &err);
    if (rv != 0)
        fail_msg("normalize: %s: %s", err.field, err.msg);
    json_t *task = json_incref(json_object_get(out, "task"));
    json_decref(in);
    json_decref(out);
    return task;
}

static const char *const extra[] = {"SHOAL_TASK_ID=t1", NULL};

static json_t *config_of(const json_t *spec, const json_t *img, const char *netns,
                         const json_t *seccomp)
{
    struct agent_oci_in in = {
        .spec = spec,
        .image_config = img,
        .id = "t1",
        .hostname = "web-1",
        .rootfs = "/data/tasks/t1/rootfs",
        .etc_dir = "/data/tasks/t1/etc",
        .netns = netns,
        .volumes_dir = "/data/volumes",
        .env_extra = extra,
        .user = {.uid = 7, .gid = 8, .groups = {9}, .n_groups = 1},
        .seccomp = seccomp,
        .swap_accounting = true,
    };
    json_t *c = NULL;
    char errmsg[256];
    assert_int_equal(agent_oci_config(&in, &c, errmsg), 0);
    return c;
}

static const char *str_at(const json_t *list, size_t i)
{
    return json_string_value(json_array_get(list, i));
}

static int has_str(const json_t *list, const char *s)
{
    for (size_t i = 0; i < json_array_size(list); i++)
        if (strcmp(str_at(list, i), s) == 0)
            return 1;
    return 0;
}

static const json_t *find_mount(const json_t *c, const char *dst)
{
    const json_t *ms = json_object_get(c, "mounts");
    for (size_t i = 0; i < json_array_size(ms); i++)
        if (strcmp(json_string_value(json_object_get(json_array_get(ms, i), "destination")), dst) ==
            0)
            return json_array_get(ms, i);
    return NULL;
}

static void test_image_program_env_cwd(void **state)
{
    (void)state;
    json_t *spec = task_of("{\"driver\": \"runc\", \"image\": \"r:5000/b:1\", "
                           "\"env\": {\"B\": \"spec\", \"C\": \"3\"}}");
    json_t *img = json_pack("{s:[s], s:[s,s], s:[s,s], s:s}", "Entrypoint", "/bin/httpd", "Cmd",
                            "-f", "-v", "Env", "PATH=/bin", "B=image", "WorkingDir", "/www");
    json_t *c = config_of(spec, img, NULL, NULL);
    const json_t *p = json_object_get(c, "process");
    const json_t *args = json_object_get(p, "args");
    assert_int_equal(json_array_size(args), 3);
    assert_string_equal(str_at(args, 0), "/bin/httpd");
    assert_string_equal(str_at(args, 2), "-v");
    const json_t *env = json_object_get(p, "env");
    assert_true(has_str(env, "PATH=/bin"));
    assert_true(has_str(env, "B=spec"));
    assert_false(has_str(env, "B=image"));
    assert_true(has_str(env, "C=3"));
    assert_true(has_str(env, "SHOAL_TASK_ID=t1"));
    assert_string_equal(json_string_value(json_object_get(p, "cwd")), "/www");
    assert_false(json_is_true(json_object_get(p, "terminal")));
    assert_true(json_is_true(json_object_get(p, "noNewPrivileges")));
    const json_t *user = json_object_get(p, "user");
    assert_int_equal(json_integer_value(json_object_get(user, "uid")), 7);
    assert_int_equal(json_integer_value(json_object_get(user, "gid")), 8);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(user, "additionalGids"), 0)),
                     9);
    json_decref(c);

    /* command replaces the entrypoint and the image's Cmd; args replace Cmd. */
    json_t *spec2 = task_of("{\"driver\": \"runc\", \"image\": \"b\", \"command\": [\"sh\"], "
                            "\"args\": [\"-c\", \"true\"]}");
    c = config_of(spec2, img, NULL, NULL);
    args = json_object_get(json_object_get(c, "process"), "args");
    assert_int_equal(json_array_size(args), 3);
    assert_string_equal(str_at(args, 0), "sh");
    assert_string_equal(str_at(args, 1), "-c");
    json_decref(c);
    json_t *spec3 = task_of("{\"driver\": \"runc\", \"image\": \"b\", \"args\": [\"-p\", \"80\"]}");
    c = config_of(spec3, img, NULL, NULL);
    args = json_object_get(json_object_get(c, "process"), "args");
    assert_int_equal(json_array_size(args), 3);
    assert_string_equal(str_at(args, 0), "/bin/httpd");
    assert_string_equal(str_at(args, 1), "-p");
    json_decref(c);
    json_decref(spec);
    json_decref(spec2);
    json_decref(spec3);
    json_decref(img);
}

static void test_no_program(void **state)
{
    (void)state;
    json_t *spec = task_of("{\"driver\": \"runc\", \"image\": \"b\"}");
    struct agent_oci_in in = {.spec = spec,
                              .id = "t1",
                              .hostname = "h",
                              .rootfs = "/r",
                              .etc_dir = "/e",
                              .volumes_dir = "/v"};
    json_t *c = NULL;
    char errmsg[256];
    assert_int_equal(agent_oci_config(&in, &c, errmsg), -EINVAL);
    /* No PATH anywhere: the default one is added. */
    json_t *spec2 = task_of("{\"driver\": \"runc\", \"image\": \"b\", \"command\": [\"x\"]}");
    in.spec = spec2;
    assert_int_equal(agent_oci_config(&in, &c, errmsg), 0);
    assert_true(has_str(json_object_get(json_object_get(c, "process"), "env"),
                        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
    assert_string_equal(json_string_value(json_object_get(json_object_get(c, "process"), "cwd")),
                        "/");
    json_decref(c);
    json_decref(spec2);
    c = NULL;
    assert_null(c);
    assert_non_null(strstr(errmsg, "no program"));
    json_decref(spec);
}

static void test_secure_defaults(void **state)
{
    (void)state;
    json_t *spec = task_of("{\"driver\": \"runc\", \"image\": \"b\", \"command\": [\"sh\"]}");
    json_t *c = config_of(spec, NULL, "/data/net/ns/t1", NULL);
    const json_t *linux_ = json_object_get(c, "linux");
    assert_true(has_str(json_object_get(linux_, "maskedPaths"), "/proc/kcore"));
    assert_true(has_str(json_object_get(linux_, "readonlyPaths"), "/proc/sys"));
    assert_string_equal(json_string_value(json_object_get(linux_, "cgroupsPath")), "/shoal/t1");
    const json_t *dev =
        json_array_get(json_object_get(json_object_get(linux_, "resources"), "devices"), 0);
    assert_false(json_is_true(json_object_get(dev, "allow")));
    assert_string_equal(json_string_value(json_object_get(dev, "access")), "rwm");
    const json_t *ns = json_object_get(linux_, "namespaces");
    int net = 0;
    for (size_t i = 0; i < json_array_size(ns); i++) {
        const json_t *n = json_array_get(ns, i);
        if (strcmp(json_string_value(json_object_get(n, "type")), "network") == 0) {
            net = 1;
            assert_string_equal(json_string_value(json_object_get(n, "path")), "/data/net/ns/t1");
        }
    }
    assert_true(net);
    const json_t *d = find_mount(c, "/dev");
    assert_non_null(d);
    assert_string_equal(json_string_value(json_object_get(d, "type")), "tmpfs");
    assert_non_null(find_mount(c, "/etc/hosts"));
    assert_string_equal(
        json_string_value(json_object_get(find_mount(c, "/etc/resolv.conf"), "source")),
        "/data/tasks/t1/etc/resolv.conf");
    const json_t *caps =
        json_object_get(json_object_get(json_object_get(c, "process"), "capabilities"), "bounding");
    assert_int_equal(json_array_size(caps), 14);
    assert_true(has_str(caps, "CAP_NET_BIND_SERVICE"));
    assert_false(has_str(caps, "CAP_SYS_ADMIN"));
    assert_false(json_is_true(json_object_get(json_object_get(c, "root"), "readonly")));
    json_decref(c);
    /* Host network: no network namespace. */
    c = config_of(spec, NULL, NULL, NULL);
    ns = json_object_get(json_object_get(c, "linux"), "namespaces");
    for (size_t i = 0; i < json_array_size(ns); i++)
        assert_string_not_equal(json_string_value(json_object_get(json_array_get(ns, i), "type")),
                                "network");
    json_decref(c);
    json_decref(spec);
}

static void test_mounts_resources_caps(void **state)
{
    (void)state;
    json_t *spec = task_of(
        "{\"driver\": \"runc\", \"image\": \"b\", \"command\": [\"sh\"], \"read_only\": true, "
        "\"cap_add\": [\"net_admin\"], \"cap_drop\": [\"CAP_NET_RAW\", \"chown\"], "
        "\"resources\": {\"limits\": {\"memory\": \"64M\", \"cpu\": 0.5, \"pids\": 100}}, "
        "\"mounts\": [{\"type\": \"bind\", \"source\": \"/srv\", \"target\": \"/srv\", "
        "\"read_only\": true}, {\"type\": \"volume\", \"source\": \"data\", \"target\": \"/d\"}, "
        "{\"type\": \"tmpfs\", \"target\": \"/t\", \"size\": \"1M\"}]}");
    json_t *c = config_of(spec, NULL, NULL, NULL);
    assert_true(json_is_true(json_object_get(json_object_get(c, "root"), "readonly")));
    const json_t *m = find_mount(c, "/srv");
    assert_string_equal(json_string_value(json_object_get(m, "type")), "bind");
    assert_true(has_str(json_object_get(m, "options"), "ro"));
    m = find_mount(c, "/d");
    assert_string_equal(json_string_value(json_object_get(m, "source")),
                        "/data/volumes/data/_data");
    assert_true(has_str(json_object_get(m, "options"), "rw"));
    m = find_mount(c, "/t");
    assert_string_equal(json_string_value(json_object_get(m, "type")), "tmpfs");
    assert_true(has_str(json_object_get(m, "options"), "size=1048576"));
    const json_t *res = json_object_get(json_object_get(c, "linux"), "resources");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "memory"), "limit")),
                     64 << 20);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "cpu"), "quota")),
                     50000);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "pids"), "limit")),
                     100);
    const json_t *caps = json_object_get(
        json_object_get(json_object_get(c, "process"), "capabilities"), "effective");
    assert_true(has_str(caps, "CAP_NET_ADMIN"));
    assert_false(has_str(caps, "CAP_NET_RAW"));
    assert_false(has_str(caps, "CAP_CHOWN"));
    assert_int_equal(json_array_size(caps), 13);
    json_decref(c);
    json_decref(spec);
    /* ALL */
    spec = task_of("{\"driver\": \"runc\", \"image\": \"b\", \"cap_drop\": [\"all\"], "
                   "\"cap_add\": [\"KILL\"]}");
    json_t *list = agent_oci_caps(spec);
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(str_at(list, 0), "CAP_KILL");
    json_decref(list);
    json_decref(spec);
}

static void test_spec_refusals(void **state)
{
    (void)state;
    static const char *const bad[][2] = {
        {"{\"driver\": \"runc\", \"image\": \"b\", \"cap_add\": [\"NOPE\"]}", "task.cap_add[0]"},
        {"{\"driver\": \"process\", \"command\": [\"x\"], \"read_only\": true}", "task.read_only"},
        {"{\"driver\": \"process\", \"command\": [\"x\"], \"network\": \"bridge\"}",
         "task.network"},
        {"{\"driver\": \"runc\", \"image\": \"b\", \"mounts\": [{\"type\": \"bind\", "
         "\"source\": \"rel\", \"target\": \"/x\"}]}",
         "task.mounts[0].source"},
        {"{\"driver\": \"runc\", \"image\": \"b\", \"mounts\": [{\"type\": \"volume\", "
         "\"source\": \"../x\", \"target\": \"/x\"}]}",
         "task.mounts[0].source"},
        {"{\"driver\": \"runc\", \"image\": \"b\", \"mounts\": [{\"type\": \"tmpfs\", "
         "\"target\": \"/x\"}, {\"type\": \"tmpfs\", \"target\": \"/x\"}]}",
         "task.mounts[1].target"},
        {"{\"driver\": \"runc\", \"image\": \"b\", \"mounts\": [{\"type\": \"nfs\", "
         "\"target\": \"/x\"}]}",
         "task.mounts[0].type"},
        {"{\"driver\": \"runc\", \"image\": \"b\", \"read_only\": 1}", "task.read_only"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        char text[1024];
        snprintf(text, sizeof(text), "{\"name\": \"web\", \"task\": %s}", bad[i][0]);
        json_t *in = json_loads(text, 0, NULL);
        assert_non_null(in);
        json_t *out = NULL;
        struct api_err err = {0};
        assert_int_equal(api_spec_normalize(in, &out, &err), -EINVAL);
        assert_string_equal(err.field, bad[i][1]);
        json_decref(in);
    }
}

static void test_seccomp(void **state)
{
    (void)state;
    json_t *profile = json_loads(
        "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 38, \"syscalls\": ["
        "{\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALLOW\"},"
        "{\"names\": [\"mount\"], \"action\": \"SCMP_ACT_ALLOW\", "
        "\"includes\": {\"caps\": [\"CAP_SYS_ADMIN\"]}},"
        "{\"names\": [\"arm_only\"], \"action\": \"SCMP_ACT_ALLOW\", "
        "\"includes\": {\"arches\": [\"arm64\"]}},"
        "{\"names\": [\"clone\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 0, "
        "\"value\": 1, \"op\": \"SCMP_CMP_MASKED_EQ\"}], "
        "\"excludes\": {\"caps\": [\"CAP_SYS_ADMIN\"]}}]}",
        0, NULL);
    assert_non_null(profile);
    json_t *caps = json_pack("[s]", "CAP_KILL");
    json_t *s = agent_oci_seccomp(profile, caps);
    const json_t *calls = json_object_get(s, "syscalls");
    assert_int_equal(json_array_size(calls), 2);
    assert_string_equal(str_at(json_object_get(json_array_get(calls, 0), "names"), 0), "read");
    assert_string_equal(str_at(json_object_get(json_array_get(calls, 1), "names"), 0), "clone");
    assert_int_equal(json_integer_value(json_object_get(s, "defaultErrnoRet")), 38);
    assert_int_equal(json_array_size(json_object_get(s, "architectures")), 1);
    json_decref(s);
    json_decref(caps);
    caps = json_pack("[s]", "CAP_SYS_ADMIN");
    s = agent_oci_seccomp(profile, caps);
    calls = json_object_get(s, "syscalls");
    assert_int_equal(json_array_size(calls), 2);
    assert_string_equal(str_at(json_object_get(json_array_get(calls, 1), "names"), 0), "mount");
    json_decref(s);
    json_decref(caps);
    json_decref(profile);
    /* Debian's profile converts, and keeps the basics. */
    profile = json_load_file("/usr/share/containers/seccomp.json", 0, NULL);
    if (!profile)
        return;
    json_t *empty = json_object();
    caps = agent_oci_caps(empty);
    json_decref(empty);
    s = agent_oci_seccomp(profile, caps);
    int found = 0;
    calls = json_object_get(s, "syscalls");
    for (size_t i = 0; i < json_array_size(calls); i++)
        found |= has_str(json_object_get(json_array_get(calls, i), "names"), "read");
    assert_true(found);
    json_decref(s);
    json_decref(caps);
    json_decref(profile);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_user_lookup(void **state)
{
    (void)state;
    char root[] = "/tmp/shoal-test-oci-XXXXXX", path[300];
    assert_non_null(mkdtemp(root));
    snprintf(path, sizeof(path), "%s/etc", root);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/etc/passwd", root);
    write_file(path, "root:x:0:0:root:/root:/bin/sh\nwww:x:33:34::/www:/bin/sh\n");
    snprintf(path, sizeof(path), "%s/etc/group", root);
    write_file(path, "root:x:0:\nwww:x:34:\nlogs:x:50:www,other\nstaff:x:60:\n");
    struct agent_oci_user u;
    char errmsg[256];
    assert_int_equal(agent_oci_resolve_user(root, "www", &u, errmsg), 0);
    assert_int_equal(u.uid, 33);
    assert_int_equal(u.gid, 34);
    assert_int_equal(u.n_groups, 1);
    assert_int_equal(u.groups[0], 50);
    assert_int_equal(agent_oci_resolve_user(root, "33:staff", &u, errmsg), 0);
    assert_int_equal(u.uid, 33);
    assert_int_equal(u.gid, 60);
    assert_int_equal(agent_oci_resolve_user(root, "1234", &u, errmsg), 0);
    assert_int_equal(u.uid, 1234);
    assert_int_equal(agent_oci_resolve_user(root, "nobody", &u, errmsg), -ENOENT);
    assert_non_null(strstr(errmsg, "nobody"));
    assert_int_equal(agent_oci_resolve_user(root, "", &u, errmsg), 0);
    assert_int_equal(u.uid, 0);
    /* A passwd that is a symlink to the host's: resolved inside the rootfs. */
    unlink(path);
    snprintf(path, sizeof(path), "%s/etc/passwd", root);
    unlink(path);
    assert_int_equal(symlink("/etc/passwd", path), 0);
    assert_int_equal(agent_oci_resolve_user(root, "root", &u, errmsg), -ENOENT);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_image_program_env_cwd), cmocka_unit_test(test_no_program),
        cmocka_unit_test(test_secure_defaults),       cmocka_unit_test(test_mounts_resources_caps),
        cmocka_unit_test(test_spec_refusals),         cmocka_unit_test(test_seccomp),
        cmocka_unit_test(test_user_lookup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
