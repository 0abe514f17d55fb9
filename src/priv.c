/*
 * priv.c: dropping root. After every listener is bound (ports below 1024
 * need root or CAP_NET_BIND_SERVICE) and before any worker runs, wharfd
 * becomes `user`, with that user's groups; with no capability left, it
 * cannot come back. Running as root with no `user` is refused unless -f
 * says it is on purpose (development, tests, containers).
 * Not for: what systemd does instead (User= in the unit: then wharfd
 * starts as that user, and `user` is that user or unset).
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

#include "wharfd.h"

int priv_check(const struct conf *conf, bool foreground, struct conf_errors *errs)
{
    if (geteuid() != 0 || (conf->conf_user && *conf->conf_user) || foreground)
        return 0;
    conf_errors_add(errs, 0, "%s: user: wharfd runs as root and `user` is not set: set it "
                    "to the account wharfd should serve as (or give -f to run as root)",
                    conf->conf_file);
    return -1;
}

static int fail(const struct conf *conf, struct conf_errors *errs, const char *what, int err)
{
    conf_report(conf, errs, "user", "cannot become \"%s\": %s: %s", conf->conf_user, what,
                strerror(err));
    return -1;
}

int priv_drop(const struct conf *conf, struct conf_errors *errs)
{
    struct passwd *pw;

    if (!conf->conf_user || !*conf->conf_user)
        return 0;
    errno = 0;
    if (!(pw = getpwnam(conf->conf_user)))
        return fail(conf, errs, "getpwnam", errno ? errno : ENOENT);
    if (geteuid() == pw->pw_uid && getegid() == pw->pw_gid)
        return 0;       /* started as that user already (systemd's User=) */
    if (geteuid() != 0)
        return fail(conf, errs, "not started as root", EPERM);
    if (initgroups(pw->pw_name, pw->pw_gid) < 0)
        return fail(conf, errs, "initgroups", errno);
    if (setgid(pw->pw_gid) < 0)
        return fail(conf, errs, "setgid", errno);
    if (setuid(pw->pw_uid) < 0)
        return fail(conf, errs, "setuid", errno);
    /* no way back: a process that could regain root did not drop it */
    if (pw->pw_uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))
        return fail(conf, errs, "root could be regained", EPERM);
    log_info("running as user \"%s\" (uid %ld, gid %ld)", pw->pw_name, (long)pw->pw_uid,
             (long)pw->pw_gid);
    return 0;
}
