/* Capability names for task.cap_add / task.cap_drop, and Docker's default
 * set that containers get (moby's oci/caps/defaults.go lists the same 14). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "api/spec.h"
#include "api/spec_internal.h"

const char *const api_spec_caps[] = {
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
    NULL,
};

const char *const api_spec_default_caps[] = {
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
    NULL,
};

/* "net_admin", "CAP_NET_ADMIN", "all" -> "CAP_NET_ADMIN" / "ALL"; false
 * when not a capability. */
static bool cap_canon(const char *s, char *out, size_t size)
{
    char up[64];
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof(up))
        return false;
    for (size_t i = 0; i <= n; i++)
        up[i] = (char)toupper((unsigned char)s[i]);
    if (strcmp(up, "ALL") == 0) {
        snprintf(out, size, "ALL");
        return true;
    }
    snprintf(out, size, "%s%s", strncmp(up, "CAP_", 4) == 0 ? "" : "CAP_", up);
    return api__spec_in_choices(api_spec_caps, out);
}

int api__spec_caps(const struct api__spec_field *f, const json_t *val, const char *path,
                   json_t *out, struct api__spec_walk *w)
{
    json_t *list = json_array();
    int rv = val ? api__spec_get_list(val, path, f->max, w) : 0;
    for (size_t i = 0; rv == 0 && i < json_array_size(val); i++) {
        char p[API__SPEC_PATH_LEN], canon[64];
        const char *s;
        api__spec_path_index(p, path, i);
        rv = api__spec_get_str(json_array_get(val, i), p, w, &s);
        if (rv == 0 && !cap_canon(s, canon, sizeof(canon)))
            rv = api__spec_bad(w, p, "\"%s\" is not a capability (e.g. \"NET_ADMIN\" or \"ALL\")",
                               s);
        int dup = 0;
        for (size_t j = 0; rv == 0 && j < json_array_size(list); j++)
            dup |= strcmp(json_string_value(json_array_get(list, j)), canon) == 0;
        if (rv == 0 && !dup)
            json_array_append_new(list, json_string(canon));
    }
    if (rv < 0) {
        json_decref(list);
        return rv;
    }
    json_object_set_new(out, f->key, list);
    return 0;
}
