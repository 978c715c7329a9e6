/* Tests for agent/net against the real system: bridge, nft table, netns,
 * veth, DNAT to a busybox httpd. Root only (skipped otherwise). The process
 * first moves into its own network and mount namespaces, so everything it
 * makes lives and dies there; only 127.0.0.1 and the test's own bridge
 * addresses are ever contacted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/net.h"
#include "common/util.h"

#define BODY "hello from shoal's netns\n"

static char tmp_dir[64];
static char www_dir[128];
static struct agent_net_config cfg;

/* Runs a shell command (in the test's namespaces) and returns its output;
 * the caller frees it. */
static char *run_out(const char *cmd)
{
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    size_t cap = 65536, len = 0;
    char *out = xmalloc(cap);
    size_t n;
    while ((n = fread(out + len, 1, cap - 1 - len, f)) > 0)
        len += n;
    out[len] = '\0';
    pclose(f);
    return out;
}

static int contains(const char *cmd, const char *needle)
{
    _cleanup_free_ char *out = run_out(cmd);
    return strstr(out, needle) != NULL;
}

/* GET / from ip:port; returns 1 when the answer carries BODY. */
static int http_get(const char *ip, int port)
{
    _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, ip, &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        return 0;
    static const char req[] = "GET /index.html HTTP/1.0\r\n\r\n";
    if (write(fd, req, sizeof(req) - 1) != (ssize_t)sizeof(req) - 1)
        return 0;
    char buf[4096];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof(buf) - 1 && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    return strstr(buf, BODY) != NULL;
}

/* http_get from inside the netns at path (a forked child joins it). */
static int http_get_from(const char *netns, const char *ip, int port)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(netns, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || setns(fd, CLONE_NEWNET) != 0)
            _exit(2);
        _exit(http_get(ip, port) ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Starts busybox httpd on port 80 inside netns; returns its pid. */
static pid_t start_httpd(const char *netns)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(netns, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || setns(fd, CLONE_NEWNET) != 0)
            _exit(126);
        execl("/bin/busybox", "busybox", "httpd", "-f", "-p", "80", "-h", www_dir, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void stop(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static int wait_http(const char *ip, int port)
{
    uint64_t deadline = common_now_ms() + 5000;
    while (common_now_ms() < deadline) {
        if (http_get(ip, port))
            return 1;
        usleep(20000);
    }
    return 0;
}

static size_t n_listed(void)
{
    char **ids;
    size_t n;
    assert_int_equal(agent_net_list(&cfg, &ids, &n), 0);
    agent_net_list_free(ids, n);
    return n;
}

/* Nothing of task id is left: allocation, netns file, veth, and the map
 * element for published unless 0. */
static void assert_gone(const char *id, int published)
{
    char path[4300], veth[16], elem[64];
    snprintf(path, sizeof(path), "%s/ns/%s", cfg.data_dir, id);
    assert_int_equal(access(path, F_OK), -1);
    snprintf(path, sizeof(path), "%s/tasks/%s.json", cfg.data_dir, id);
    assert_int_equal(access(path, F_OK), -1);
    agent_net_veth_name(&cfg, id, veth);
    assert_false(contains("ip -o link", veth));
    snprintf(elem, sizeof(elem), "tcp . %d :", published);
    if (published)
        assert_false(contains("nft list map ip shoal ports", elem));
}

static const struct agent_net_port web_port[] = {{18080, 80, "tcp"}};

static void test_config(void **state)
{
    (void)state;
    struct agent_net_config c;
    char errmsg[256];
    assert_int_equal(agent_net_config_init(&c, "/d", NULL, NULL, errmsg), 0);
    assert_string_equal(c.bridge, "shoal0");
    assert_string_equal(c.table, "shoal");
    assert_string_equal(c.data_dir, "/d/net");
    assert_int_equal(agent_net_config_init(&c, "/d", "br-x", "10.1.0.0/16", errmsg), 0);
    assert_string_equal(c.table, "shoal_br_x");
    static const char *const bad_subnets[] = {"10.1.0.1/16", "10.1.0.0", "10.1.0.0/7",
                                              "10.1.0.0/30", "x/24",     "10.1.0.0/2x"};
    for (size_t i = 0; i < ARRAY_SIZE(bad_subnets); i++)
        assert_int_equal(agent_net_config_init(&c, "/d", NULL, bad_subnets[i], errmsg), -EINVAL);
    assert_int_equal(agent_net_config_init(&c, "/d", "a-very-long-bridge", NULL, errmsg), -EINVAL);
    assert_int_equal(agent_net_config_init(&c, "/d", "br;x", NULL, errmsg), -EINVAL);
}

static void test_init(void **state)
{
    (void)state;
    char errmsg[256] = "";
    struct agent_net_task t;
    assert_int_equal(agent_net_task_setup(&cfg, "t1", web_port, 1, &t, errmsg), -ENOENT);
    assert_non_null(strstr(errmsg, "not set up"));
    assert_int_equal(agent_net_task_teardown(&cfg, "t1", errmsg), 0);
    int rv = agent_net_init(&cfg, errmsg);
    if (rv != 0)
        fail_msg("init: %s", errmsg);
    assert_int_equal(agent_net_ensure(&cfg, errmsg), 0);
    assert_int_equal(agent_net_init(&cfg, errmsg), 0);
    assert_true(contains("ip -o addr show dev shoal0", "10.88.0.1/24"));
    assert_true(contains("cat /proc/sys/net/ipv4/conf/shoal0/route_localnet", "1"));
    _cleanup_free_ char *tables = run_out("nft list tables");
    assert_string_equal(tables, "table ip shoal\n");
    assert_int_equal(n_listed(), 0);
}

static void test_task_http(void **state)
{
    (void)state;
    char errmsg[256] = "";
    struct agent_net_task t, again;
    int rv = agent_net_task_setup(&cfg, "t0123456789abcdef01234567", web_port, 1, &t, errmsg);
    if (rv != 0)
        fail_msg("setup: %s", errmsg);
    assert_string_equal(t.ip, "10.88.0.2");
    assert_string_equal(t.gateway, "10.88.0.1");
    assert_int_equal(t.prefix, 24);
    assert_int_equal(
        agent_net_task_setup(&cfg, "t0123456789abcdef01234567", web_port, 1, &again, errmsg), 0);
    assert_memory_equal(&t, &again, sizeof(t));
    /* the same again after the element was lost: it is published again */
    assert_int_equal(system("nft delete element ip shoal ports '{ tcp . 18080 }'"), 0);
    assert_int_equal(
        agent_net_task_setup(&cfg, "t0123456789abcdef01234567", web_port, 1, &again, errmsg), 0);
    assert_memory_equal(&t, &again, sizeof(t));
    pid_t httpd = start_httpd(t.netns);
    int ok_lo = wait_http("127.0.0.1", 18080);
    int ok_gw = http_get("10.88.0.1", 18080);
    int ok_direct = http_get(t.ip, 80);
    /* init again while the task runs: its port stays published */
    assert_int_equal(agent_net_init(&cfg, errmsg), 0);
    int ok_after_init = http_get("127.0.0.1", 18080);
    stop(httpd);
    assert_true(ok_lo);
    assert_true(ok_gw);
    assert_true(ok_direct);
    assert_true(ok_after_init);
    assert_int_equal(n_listed(), 1);
}

static void test_second_task_and_conflicts(void **state)
{
    (void)state;
    char errmsg[256] = "";
    struct agent_net_task t, t1;
    const struct agent_net_port p2[] = {{18081, 8080, "tcp"}, {18081, 53, "udp"}};
    assert_int_equal(agent_net_task_setup(&cfg, "t2", p2, 2, &t, errmsg), 0);
    assert_string_equal(t.ip, "10.88.0.3");
    /* from one container to another: directly, and through the other's
     * published port on the gateway (hairpin, masqueraded) */
    assert_int_equal(
        agent_net_task_setup(&cfg, "t0123456789abcdef01234567", web_port, 1, &t1, errmsg), 0);
    pid_t httpd = start_httpd(t1.netns);
    int ok_wait = wait_http("127.0.0.1", 18080);
    int ok_direct = http_get_from(t.netns, t1.ip, 80);
    int ok_hairpin = http_get_from(t.netns, t.gateway, 18080);
    int ok_self = http_get_from(t1.netns, t1.gateway, 18080);
    stop(httpd);
    assert_true(ok_wait);
    assert_true(ok_direct);
    assert_true(ok_hairpin);
    assert_true(ok_self);
    assert_true(contains("nft list map ip shoal ports", "udp . 18081 : 10.88.0.3 . 53"));
    /* a port another task publishes */
    assert_int_equal(agent_net_task_setup(&cfg, "t3", web_port, 1, &t, errmsg), -EADDRINUSE);
    assert_non_null(strstr(errmsg, "18080/tcp"));
    assert_gone("t3", 0);
    /* invalid ports and ids */
    const struct agent_net_port bad[][1] = {
        {{0, 80, "tcp"}}, {{70000, 80, "tcp"}}, {{8000, 0, "tcp"}}, {{8000, 80, "sctp"}}};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        assert_int_equal(agent_net_task_setup(&cfg, "t3", bad[i], 1, &t, errmsg), -EINVAL);
        assert_gone("t3", 8000);
    }
    const struct agent_net_port twice[] = {{8000, 80, "tcp"}, {8000, 81, "tcp"}};
    assert_int_equal(agent_net_task_setup(&cfg, "t3", twice, 2, &t, errmsg), -EINVAL);
    assert_int_equal(agent_net_task_setup(&cfg, "../x", web_port, 1, &t, errmsg), -EINVAL);
    assert_int_equal(n_listed(), 2);
}

static void test_failure_midway(void **state)
{
    (void)state;
    char errmsg[256] = "", veth[16], cmd[128];
    struct agent_net_task t;
    const struct agent_net_port p[] = {{18090, 80, "tcp"}};
    /* the veth name is taken: fails after the netns exists */
    agent_net_veth_name(&cfg, "t4", veth);
    snprintf(cmd, sizeof(cmd), "ip link add %s type bridge", veth);
    assert_int_equal(system(cmd), 0);
    assert_int_not_equal(agent_net_task_setup(&cfg, "t4", p, 1, &t, errmsg), 0);
    assert_non_null(strstr(errmsg, "veth"));
    snprintf(cmd, sizeof(cmd), "ip link del %s", veth);
    assert_int_equal(system(cmd), 0);
    assert_gone("t4", 18090);
    /* the map element is taken by someone else: fails at the last step */
    assert_int_equal(system("nft add element ip shoal ports '{ tcp . 18090 : 10.88.0.200 . 1 }'"),
                     0);
    assert_int_not_equal(agent_net_task_setup(&cfg, "t4", p, 1, &t, errmsg), 0);
    assert_non_null(strstr(errmsg, "publish ports"));
    snprintf(cmd, sizeof(cmd), "%s/ns/t4", cfg.data_dir);
    assert_int_equal(access(cmd, F_OK), -1);
    agent_net_veth_name(&cfg, "t4", veth);
    assert_false(contains("ip -o link", veth));
    assert_true(contains("nft list map ip shoal ports", "10.88.0.200"));
    assert_int_equal(system("nft delete element ip shoal ports '{ tcp . 18090 }'"), 0);
    assert_int_equal(n_listed(), 2);
}

static void test_teardown(void **state)
{
    (void)state;
    char errmsg[256] = "";
    assert_int_equal(agent_net_task_teardown(&cfg, "t0123456789abcdef01234567", errmsg), 0);
    assert_int_equal(agent_net_task_teardown(&cfg, "t2", errmsg), 0);
    assert_gone("t0123456789abcdef01234567", 18080);
    assert_gone("t2", 18081);
    assert_false(contains("ip -o link", " vs"));
    assert_false(contains("nft list map ip shoal ports", "10.88.0"));
    assert_int_equal(n_listed(), 0);
    /* again, and for ids that never existed */
    assert_int_equal(agent_net_task_teardown(&cfg, "t2", errmsg), 0);
    assert_int_equal(agent_net_task_teardown(&cfg, "never", errmsg), 0);
    /* the address is free again */
    struct agent_net_task t;
    assert_int_equal(agent_net_task_setup(&cfg, "t5", web_port, 1, &t, errmsg), 0);
    assert_string_equal(t.ip, "10.88.0.2");
    assert_int_equal(agent_net_task_teardown(&cfg, "t5", errmsg), 0);
    assert_gone("t5", 18080);
    _cleanup_free_ char *tables = run_out("nft list tables");
    assert_string_equal(tables, "table ip shoal\n");
}

/* The netns is gone (as after a reboot, where the file stays empty):
 * setup makes everything again; teardown copes with what is missing. */
static void test_vanished_netns(void **state)
{
    (void)state;
    char errmsg[256] = "";
    struct agent_net_task t, again;
    assert_int_equal(agent_net_task_setup(&cfg, "t6", web_port, 1, &t, errmsg), 0);
    assert_int_equal(umount2(t.netns, MNT_DETACH), 0);
    int rv = agent_net_task_setup(&cfg, "t6", web_port, 1, &again, errmsg);
    if (rv != 0)
        fail_msg("setup again: %s", errmsg);
    assert_string_equal(again.ip, t.ip);
    pid_t httpd = start_httpd(again.netns);
    int ok = wait_http("127.0.0.1", 18080);
    stop(httpd);
    assert_true(ok);
    assert_int_equal(umount2(t.netns, MNT_DETACH), 0);
    assert_int_equal(agent_net_task_teardown(&cfg, "t6", errmsg), 0);
    assert_gone("t6", 18080);
}

struct par {
    char id[16];
    int port;
    int rv;
    struct agent_net_task t;
    char errmsg[256];
};

static void *par_setup(void *arg)
{
    struct par *p = arg;
    struct agent_net_port port = {p->port, 80, "tcp"};
    p->rv = agent_net_task_setup(&cfg, p->id, &port, 1, &p->t, p->errmsg);
    return NULL;
}

static void *par_teardown(void *arg)
{
    struct par *p = arg;
    p->rv = agent_net_task_teardown(&cfg, p->id, p->errmsg);
    return NULL;
}

/* Setups and teardowns from several threads (as from the thread pool). */
static void test_parallel(void **state)
{
    (void)state;
    enum { N = 6 };
    struct par ps[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        memset(&ps[i], 0, sizeof(ps[i]));
        snprintf(ps[i].id, sizeof(ps[i].id), "tp%d", i);
        ps[i].port = 19000 + i;
        assert_int_equal(pthread_create(&th[i], NULL, par_setup, &ps[i]), 0);
    }
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++) {
        if (ps[i].rv != 0)
            fail_msg("%s: %s", ps[i].id, ps[i].errmsg);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(ps[i].t.ip, ps[j].t.ip);
    }
    assert_int_equal(n_listed(), N);
    for (int i = 0; i < N; i++)
        assert_int_equal(pthread_create(&th[i], NULL, par_teardown, &ps[i]), 0);
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++) {
        assert_int_equal(ps[i].rv, 0);
        assert_gone(ps[i].id, ps[i].port);
    }
    assert_int_equal(n_listed(), 0);
}

static void test_cost(void **state)
{
    (void)state;
    char errmsg[256] = "";
    enum { N = 10 };
    uint64_t setup_ms = 0, teardown_ms = 0;
    for (int i = 0; i < N; i++) {
        struct agent_net_task t;
        uint64_t t0 = common_now_ms();
        assert_int_equal(agent_net_task_setup(&cfg, "tcost", web_port, 1, &t, errmsg), 0);
        uint64_t t1 = common_now_ms();
        assert_int_equal(agent_net_task_teardown(&cfg, "tcost", errmsg), 0);
        setup_ms += t1 - t0;
        teardown_ms += common_now_ms() - t1;
    }
    printf("test_net: setup %.1f ms, teardown %.1f ms (mean of %d)\n", (double)setup_ms / N,
           (double)teardown_ms / N, N);
    assert_int_equal(n_listed(), 0);
}

/* Own network and mount namespaces, lo up, a temp dir for the state. */
static int isolate(void)
{
    if (unshare(CLONE_NEWNET | CLONE_NEWNS) != 0 ||
        mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        return -errno;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr = {0};
    strcpy(ifr.ifr_name, "lo");
    ifr.ifr_flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING;
    int rv = ioctl(fd, SIOCSIFFLAGS, &ifr);
    close(fd);
    if (rv != 0)
        return -errno;
    strcpy(tmp_dir, "/tmp/shoal-test-net-XXXXXX");
    if (!mkdtemp(tmp_dir))
        return -errno;
    snprintf(www_dir, sizeof(www_dir), "%s/www", tmp_dir);
    char index[160];
    snprintf(index, sizeof(index), "%s/index.html", www_dir);
    FILE *f = mkdir(www_dir, 0755) == 0 ? fopen(index, "w") : NULL;
    if (!f)
        return -errno;
    fputs(BODY, f);
    fclose(f);
    char errmsg[256];
    return agent_net_config_init(&cfg, tmp_dir, NULL, NULL, errmsg);
}

int main(void)
{
    if (geteuid() != 0 || access("/usr/sbin/nft", X_OK) != 0 || access("/usr/sbin/ip", X_OK) != 0 ||
        access("/bin/busybox", X_OK) != 0) {
        printf("test_net: skipped (needs root, nft, ip and busybox)\n");
        return 0;
    }
    int rv = isolate();
    if (rv != 0) {
        printf("test_net: skipped (cannot make namespaces: %s)\n", strerror(-rv));
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),         cmocka_unit_test(test_init),
        cmocka_unit_test(test_task_http),      cmocka_unit_test(test_second_task_and_conflicts),
        cmocka_unit_test(test_failure_midway), cmocka_unit_test(test_teardown),
        cmocka_unit_test(test_vanished_netns), cmocka_unit_test(test_parallel),
        cmocka_unit_test(test_cost),
    };
    rv = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "test_net: could not remove %s\n", tmp_dir);
    return rv;
}
