#include "agent/join.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/httpc.h"
#include "common/util.h"

#define JOIN_TIMEOUT_MS 30000

static long cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

static long long memory_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (long long)pages * size : 0;
}

static int take_answer(struct agent_node *n, json_t *ans, char *errmsg)
{
    json_t *node = json_object_get(ans, "node");
    const char *role = json_string_value(json_object_get(node, "role"));
    const char *cred = json_string_value(json_object_get(ans, "credential"));
    const char *cluster = json_string_value(json_object_get(ans, "cluster_id"));
    const char *admin = json_string_value(json_object_get(ans, "admin_token"));
    json_t *managers = json_object_get(ans, "managers");
    if (!role || !cred || !cluster || !json_is_array(managers)) {
        snprintf(errmsg, 256, "join: the manager's answer is incomplete");
        return -EPROTO;
    }
    common_strlcpy(n->role, role, sizeof(n->role));
    common_strlcpy(n->credential, cred, sizeof(n->credential));
    common_strlcpy(n->cluster_id, cluster, sizeof(n->cluster_id));
    common_strlcpy(n->token, admin ? admin : "", sizeof(n->token));
    json_array_clear(n->managers);
    size_t i;
    json_t *m;
    json_array_foreach(managers, i, m)
    {
        json_t *a = json_object_get(m, "api_address");
        if (json_is_string(a))
            json_array_append(n->managers, a);
    }
    return 0;
}

int agent_join(struct agent_node *n, const char *addr, const char *token, char *errmsg)
{
    const char *host = strncmp(addr, "http://", 7) == 0 ? addr + 7 : addr;
    char url[512];
    snprintf(url, sizeof(url), "http://%s/v1/cluster/join", host);
    json_t *req = json_pack("{s:s, s:s, s:s, s:s, s:s, s:O, s:{s:f, s:I}}", "token", token, "id",
                            n->id_hex, "name", n->name, "api_address", n->api_address,
                            "raft_address", n->raft_address, "labels", n->labels, "resources",
                            "cpu", (double)cpu_count(), "memory", (json_int_t)memory_bytes());
    _cleanup_free_ char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    const char *headers[] = {"Content-Type: application/json", NULL};
    long status = 0;
    _cleanup_free_ char *answer = NULL;
    int rv = common_httpc_request_sync("POST", url, headers, body, strlen(body), JOIN_TIMEOUT_MS,
                                       &status, &answer, errmsg);
    if (rv != 0)
        return rv;
    json_t *ans = json_loads(answer ? answer : "", 0, NULL);
    if (status != 200) {
        const char *e = json_string_value(json_object_get(ans, "error"));
        snprintf(errmsg, 256, "join refused by %s (HTTP %ld): %s", host, status,
                 e ? e : (answer ? answer : ""));
        json_decref(ans);
        return status == 401 ? -EACCES : -EPROTO;
    }
    rv = take_answer(n, ans, errmsg);
    json_decref(ans);
    return rv;
}
