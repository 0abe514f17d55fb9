/*
 * addr.c: socket addresses as text (wharf_addr_parse / wharf_addr_format)
 * and host name resolution for socket.c and udp.c. Numeric hosts are
 * converted on the loop; names go through getaddrinfo on the blocking-work
 * pool so that no worker's loop waits for DNS.
 * Not for: creating or using sockets (socket.c, udp.c).
 */
#include "config.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "wharf-int.h"

/* ---- parsing ------------------------------------------------------------- */

/* "0".."65535", digits only (no sign, no space), at most 5 of them. */
static int addr_parse_port(const char *p, unsigned *port)
{
    unsigned v = 0;
    size_t n = 0;

    for (; p[n] >= '0' && p[n] <= '9'; n++) {
        if (n == 5)
            return WHARF_EINVAL;
        v = v * 10 + (unsigned)(p[n] - '0');
    }
    if (n == 0 || p[n] != '\0' || v > 65535)
        return WHARF_EINVAL;
    *port = v;
    return 0;
}

/* A numeric scope id after '%' ("fe80::1%2"); names are not numeric. */
static int addr_parse_scope(const char *p, uint32_t *scope)
{
    char *end;
    unsigned long v;

    if (*p < '0' || *p > '9')
        return WHARF_EINVAL;
    v = strtoul(p, &end, 10);
    if (*end != '\0' || v > UINT32_MAX)
        return WHARF_EINVAL;
    *scope = (uint32_t)v;
    return 0;
}

static int addr_parse_unix(const char *path, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)ss;
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof(sun->sun_path))
        return WHARF_EINVAL;
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, n + 1);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

/* "[addr]:port" or "[addr%scope]:port" */
static int addr_parse_ip6(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    char host[INET6_ADDRSTRLEN + 16];
    const char *close = strchr(text, ']');
    char *pct;
    unsigned port;
    size_t n;

    if (!close || close[1] != ':' || addr_parse_port(close + 2, &port) < 0)
        return WHARF_EINVAL;
    n = (size_t)(close - (text + 1));
    if (n == 0 || n >= sizeof(host))
        return WHARF_EINVAL;
    memcpy(host, text + 1, n);
    host[n] = '\0';
    if ((pct = strchr(host, '%'))) {
        *pct = '\0';
        if (addr_parse_scope(pct + 1, &sin6->sin6_scope_id) < 0)
            return WHARF_EINVAL;
    }
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
        return WHARF_EINVAL;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)port);
    *len = sizeof(*sin6);
    return 0;
}

/* "a.b.c.d:port" (inet_pton: exactly four decimal parts) */
static int addr_parse_ip4(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    char host[INET_ADDRSTRLEN];
    const char *colon = strchr(text, ':');
    unsigned port;
    size_t n;

    if (!colon || addr_parse_port(colon + 1, &port) < 0)
        return WHARF_EINVAL;
    n = (size_t)(colon - text);
    if (n == 0 || n >= sizeof(host))
        return WHARF_EINVAL;
    memcpy(host, text, n);
    host[n] = '\0';
    if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
        return WHARF_EINVAL;
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    *len = sizeof(*sin);
    return 0;
}

int wharf_addr_parse(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_storage tmp;
    socklen_t tmplen = 0;
    int rc;

    if (!text || !ss || !len)
        return WHARF_EINVAL;
    memset(&tmp, 0, sizeof(tmp));
    if (strncmp(text, "unix:", 5) == 0)
        rc = addr_parse_unix(text + 5, &tmp, &tmplen);
    else if (text[0] == '/')
        rc = addr_parse_unix(text, &tmp, &tmplen);
    else if (text[0] == '[')
        rc = addr_parse_ip6(text, &tmp, &tmplen);
    else
        rc = addr_parse_ip4(text, &tmp, &tmplen);
    if (rc < 0)
        return rc;
    memcpy(ss, &tmp, sizeof(tmp));
    *len = tmplen;
    return 0;
}

/* ---- formatting ---------------------------------------------------------- */

/* Copies n bytes and a NUL; the length, or -ENOSPC. */
static int addr_put(char *buf, size_t size, const char *s, size_t n)
{
    if (n >= size || n > INT32_MAX)
        return -ENOSPC;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return (int)n;
}

/* A named socket as its path, an abstract one as "@name" (its bytes as they
 * are), an unnamed one as "". */
static int addr_format_unix(const struct sockaddr_un *sun, socklen_t len,
                            char *buf, size_t size)
{
    size_t max = (size_t)len - offsetof(struct sockaddr_un, sun_path);

    if (max > sizeof(sun->sun_path))
        max = sizeof(sun->sun_path);
    if (max == 0)
        return addr_put(buf, size, "", 0);
    if (sun->sun_path[0] == '\0') {
        if (max >= size)
            return -ENOSPC;
        buf[0] = '@';
        return addr_put(buf + 1, size - 1, sun->sun_path + 1, max - 1) < 0
               ? -ENOSPC : (int)max;
    }
    return addr_put(buf, size, sun->sun_path, strnlen(sun->sun_path, max));
}

static int addr_format_ip(const struct sockaddr *sa, char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN], text[INET6_ADDRSTRLEN + 32];
    int n;

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
        n = snprintf(text, sizeof(text), "%s:%u", host, ntohs(sin->sin_port));
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
        if (sin6->sin6_scope_id)
            n = snprintf(text, sizeof(text), "[%s%%%u]:%u", host,
                         (unsigned)sin6->sin6_scope_id, ntohs(sin6->sin6_port));
        else
            n = snprintf(text, sizeof(text), "[%s]:%u", host, ntohs(sin6->sin6_port));
    }
    return addr_put(buf, size, text, (size_t)n);
}

int wharf_addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t size)
{
    if (!sa || !buf || len < (socklen_t)sizeof(sa_family_t))
        return WHARF_EINVAL;
    switch (sa->sa_family) {
    case AF_INET:
        if (len < (socklen_t)sizeof(struct sockaddr_in))
            return WHARF_EINVAL;
        return addr_format_ip(sa, buf, size);
    case AF_INET6:
        if (len < (socklen_t)sizeof(struct sockaddr_in6))
            return WHARF_EINVAL;
        return addr_format_ip(sa, buf, size);
    case AF_UNIX:
        return addr_format_unix((const struct sockaddr_un *)sa, len, buf, size);
    default:
        return WHARF_EINVAL;
    }
}

/* ---- helpers for socket.c and udp.c -------------------------------------- */

int addr_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return -ENOENT;
}

/* A numeric IPv4 or IPv6 host (no scope id) without any lookup; false when
 * host is not one. */
static bool addr_numeric(const char *host, unsigned port, struct addr_one *a)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;

    memset(a, 0, sizeof(*a));
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        a->len = sizeof(*sin);
        return true;
    }
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        a->len = sizeof(*sin6);
        return true;
    }
    return false;
}

struct addr_gai_job {
    const char *host;
    unsigned port;
    int socktype;
    struct addr_set *set;
};

static int addr_gai_error(int e, int saved_errno)
{
    switch (e) {
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
        return -ENOENT;
    case EAI_AGAIN:
    case EAI_FAIL:
        return -EHOSTUNREACH;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_SYSTEM:
        return saved_errno ? -saved_errno : -EIO;
    default:
        return WHARF_EINVAL;
    }
}

/* Runs on a pool thread: errno is read here, where it was set. */
static int addr_gai_run(void *arg)
{
    struct addr_gai_job *j = arg;
    struct addrinfo hints, *res, *ai;
    char serv[8];
    int e;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = j->socktype;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(serv, sizeof(serv), "%u", j->port);
    if ((e = getaddrinfo(j->host, serv, &hints, &res)) != 0)
        return addr_gai_error(e, errno);
    for (ai = res; ai && j->set->n < ADDR_MAX; ai = ai->ai_next) {
        struct addr_one *a = &j->set->v[j->set->n];

        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof(a->ss))
            continue;
        memset(a, 0, sizeof(*a));
        memcpy(&a->ss, ai->ai_addr, ai->ai_addrlen);
        a->len = ai->ai_addrlen;
        j->set->n++;
    }
    freeaddrinfo(res);
    return j->set->n ? 0 : -ENOENT;
}

int addr_resolve(const char *host, unsigned port, int socktype, struct addr_set *set)
{
    struct addr_gai_job job;

    set->n = 0;
    if (!host || !*host || port > 65535)
        return WHARF_EINVAL;
    if (addr_numeric(host, port, &set->v[0])) {
        set->n = 1;
        return 0;
    }
    job.host = host;
    job.port = port;
    job.socktype = socktype;
    job.set = set;
    return wharf_to_thread(addr_gai_run, &job);
}

int addr_wildcard(int family, unsigned port, struct addr_one *a)
{
    return addr_numeric(family == AF_INET6 ? "::" : "0.0.0.0", port, a) ? 0 : WHARF_EINVAL;
}

int addr_pick_local(const struct addr_set *locals, bool have_host, int family,
                    unsigned port, struct addr_one *out)
{
    if (!have_host)
        return addr_wildcard(family, port, out);
    for (size_t i = 0; i < locals->n; i++) {
        if (locals->v[i].ss.ss_family == family) {
            *out = locals->v[i];
            return 0;
        }
    }
    return -EAFNOSUPPORT;
}

/* ---- connecting: resolve, then try each address in turn ----------------- */

/* Tries each remote address with a local address of its family; the first
 * that connects is wrapped. The last failure when none does. */
static int addr_connect_any(const struct addr_connector *c, const struct addr_set *remotes,
                            const struct addr_set *locals, bool want_local,
                            bool have_host, unsigned local_port, struct wharf_stream **out)
{
    int rc = -EAFNOSUPPORT;

    for (size_t i = 0; i < remotes->n; i++) {
        const struct addr_one *a = &remotes->v[i];
        struct addr_one local;
        int fd;

        if (want_local && addr_pick_local(locals, have_host, a->ss.ss_family,
                                          local_port, &local) < 0)
            continue;
        fd = c->connect_one(a, want_local ? &local : NULL);
        if (fd >= 0)
            return c->wrap(fd, a, out);
        rc = fd;
        if (rc == WHARF_ECANCELLED)
            break;
    }
    return rc;
}

int addr_connect(const struct addr_connector *c, const char *host, unsigned port,
                 const char *local_host, unsigned local_port, struct wharf_stream **out)
{
    struct addr_set *sets;
    int rc;

    /* two sets are 2 KiB: keep them off the task's stack */
    if (!(sets = calloc(2, sizeof(*sets))))
        return -ENOMEM;
    rc = addr_resolve(host, port, c->socktype, &sets[0]);
    if (rc == 0 && local_host)
        rc = addr_resolve(local_host, local_port, c->socktype, &sets[1]);
    if (rc == 0 && task_current())
        rc = wharf_checkpoint_if_cancelled();   /* resolving may have taken a while */
    if (rc == 0)
        rc = addr_connect_any(c, &sets[0], &sets[1], local_host || local_port,
                              local_host != NULL, local_port, out);
    free(sets);
    return rc;
}
