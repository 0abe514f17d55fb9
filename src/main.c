/*
 * main.c: wharfd's command line and its life: load and check the config
 * (the very code a reload runs), open the log, start the server, turn
 * signals into work for the main loop, and leave with the exit code of
 * SPEC.md section 1. Signal handlers never run here: libevent delivers
 * them to the main loop as events.
 * Not for: listeners, workers or connections (server.c and below).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>
#include <libconfig.h>
#include <openssl/crypto.h>

#include "wharfd.h"

#ifndef WHARF_SYSCONF_FILE
#define WHARF_SYSCONF_FILE "/etc/wharf/wharf.conf"
#endif

struct options {
    const char *opt_config;
    bool opt_check;
    bool opt_foreground;
};

struct daemon {
    struct server d_srv;
    struct event_base *d_base;
    struct event *d_signals[4];
    int d_stops;                    /* SIGTERM/SIGINT received */
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: wharfd [-c FILE] [-t] [-f] [-V] [-h]\n"
            "  -c FILE  config file (default " WHARF_SYSCONF_FILE ")\n"
            "  -t       check the config (certificates and plugins included) and exit\n"
            "  -f       log to stderr; allow running as root without `user`\n"
            "  -V       print the versions of wharfd and its libraries\n"
            "  -h       this text\n");
}

static void print_versions(void)
{
    printf("wharfd %s (plugin API %d.%d)\n", WHARF_VERSION, WHARF_API_MAJOR, WHARF_API_MINOR);
    printf("libevent %s\n", event_get_version());
    printf("OpenSSL %s\n", OpenSSL_version(OPENSSL_VERSION_STRING));
    printf("libconfig %d.%d.%d\n", LIBCONFIG_VER_MAJOR, LIBCONFIG_VER_MINOR,
           LIBCONFIG_VER_REVISION);
    printf("jansson %s\n", jansson_version_str());
}

/* Returns -1 to go on, or the exit code. */
static int parse_args(int argc, char **argv, struct options *o)
{
    int c;

    o->opt_config = WHARF_SYSCONF_FILE;
    opterr = 0;
    while ((c = getopt(argc, argv, ":c:tfVh")) != -1) {
        switch (c) {
        case 'c': o->opt_config = optarg; break;
        case 't': o->opt_check = true; break;
        case 'f': o->opt_foreground = true; break;
        case 'V': print_versions(); return EX_OK;
        case 'h': usage(stdout); return EX_OK;
        case ':':
            fprintf(stderr, "wharfd: option -%c needs an argument\n", optopt);
            usage(stderr);
            return EX_USAGE;
        default:
            fprintf(stderr, "wharfd: unknown option -%c\n", optopt);
            usage(stderr);
            return EX_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "wharfd: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return EX_USAGE;
    }
    return -1;
}

/* Each error on stderr, and in the log when the log is somewhere else. */
static void report(const struct conf_errors *errs, bool logged)
{
    for (size_t i = 0; i < errs->err_count; i++) {
        fprintf(stderr, "wharfd: %s\n", errs->err_items[i].ce_text);
        if (logged && !log_to_stderr())
            log_error("%s", errs->err_items[i].ce_text);
    }
}

/* What -t checks, and what a reload will: the file, the certificates, the
 * plugins. */
static struct conf *load(const char *path)
{
    struct conf_errors *errs = conf_errors_new();
    struct conf *conf = NULL;
    int rc;

    if (!errs) {
        fprintf(stderr, "wharfd: %s: %s\n", path, strerror(ENOMEM));
        return NULL;
    }
    /* plugins are tried even when the file has errors: all of them at once */
    rc = conf_parse(path, &conf, errs);
    if (conf && tlsctx_load_all(conf, errs) < 0)
        rc = -1;
    if (conf && plugin_load_all(conf, errs) < 0)
        rc = -1;
    if (rc < 0) {
        conf_free(conf);
        conf = NULL;
    }
    report(errs, false);
    conf_errors_free(errs);
    return conf;
}

/* ---- signals ------------------------------------------------------------------ */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct daemon *d = arg;
    int rc;

    (void)what;
    switch (sig) {
    case SIGTERM:
    case SIGINT:
        /* a second one does not wait for the connections */
        d->d_stops++;
        log_info("%s: %s", strsignal((int)sig),
                 d->d_stops == 1 ? "stopping; connections may finish for their drain_timeout"
                                 : "stopping now");
        server_stop(&d->d_srv, d->d_stops > 1);
        break;
    case SIGHUP:
        log_warning("SIGHUP: reloading is not in this version of wharfd; nothing changed");
        break;
    case SIGUSR1:
        if ((rc = log_reopen()) < 0)
            log_error("SIGUSR1: cannot reopen the log file: %s", strerror(-rc));
        break;
    }
}

static int watch_signals(struct daemon *d)
{
    static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1 };

    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        d->d_signals[i] = evsignal_new(d->d_base, sigs[i], on_signal, d);
        if (!d->d_signals[i] || evsignal_add(d->d_signals[i], NULL) < 0)
            return -1;
    }
    return 0;
}

static void daemon_free(struct daemon *d)
{
    for (size_t i = 0; i < sizeof(d->d_signals) / sizeof(d->d_signals[0]); i++)
        if (d->d_signals[i])
            event_free(d->d_signals[i]);
    if (d->d_base)
        event_base_free(d->d_base);
}

/* ---- running ---------------------------------------------------------------------- */

static int run(struct conf *conf)
{
    struct daemon d;
    struct conf_errors *errs;
    int rc;

    memset(&d, 0, sizeof(d));
    signal(SIGPIPE, SIG_IGN);
    if (evthread_use_pthreads() < 0 || !(d.d_base = event_base_new()) ||
        watch_signals(&d) < 0 || !(errs = conf_errors_new())) {
        fprintf(stderr, "wharfd: cannot set up the main loop\n");
        conf_free(conf);
        daemon_free(&d);
        return EX_OSERR;
    }
    if (server_start(&d.d_srv, d.d_base, conf, errs) < 0) {
        report(errs, true);
        conf_errors_free(errs);
        server_free(&d.d_srv);
        daemon_free(&d);
        return EX_OSERR;
    }
    conf_errors_free(errs);
    log_info("ready: %zu listeners, %u workers (wharfd %s, pid %ld)", d.d_srv.srv_nlisteners,
             d.d_srv.srv_nworkers, WHARF_VERSION, (long)getpid());
    event_base_dispatch(d.d_base);
    rc = d.d_srv.srv_stopping ? EX_OK : 1;
    if (rc != EX_OK)
        log_error("every listener task ended on its own: stopping");
    server_free(&d.d_srv);
    daemon_free(&d);
    log_info("stopped");
    return rc;
}

int main(int argc, char **argv)
{
    struct options o = { 0 };
    struct conf *conf;
    int rc;

    if ((rc = parse_args(argc, argv, &o)) >= 0)
        return rc;
    if (!(conf = load(o.opt_config)))
        return EX_CONFIG;
    if (o.opt_check) {
        fprintf(stderr, "wharfd: %s: the configuration is valid\n", o.opt_config);
        conf_free(conf);
        return EX_OK;
    }
    if ((rc = log_open(conf->conf_log_level, o.opt_foreground, conf->conf_log_file)) < 0) {
        fprintf(stderr, "wharfd: %s:%d: log_file: cannot open \"%s\": %s\n", conf->conf_file,
                conf_line(conf, "log_file"), conf->conf_log_file, strerror(-rc));
        conf_free(conf);
        return EX_OSERR;
    }
    rc = run(conf);
    log_close();
    return rc;
}
