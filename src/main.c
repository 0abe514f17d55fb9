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
#include <time.h>
#include <unistd.h>

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
    const char *d_config;           /* the file SIGHUP reloads */
    struct event_base *d_base;
    struct event *d_signals[4];
    struct event *d_watchdog;
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

static struct conf *load(const char *path)
{
    struct conf_errors *errs = conf_errors_new();
    struct conf *conf;

    if (!errs) {
        fprintf(stderr, "wharfd: %s: %s\n", path, strerror(ENOMEM));
        return NULL;
    }
    conf = reload_load(path, errs);
    report(errs, false);
    conf_errors_free(errs);
    return conf;
}

/* ---- signals ------------------------------------------------------------------ */

/* STATUS= for systemctl status: what runs, in a few words. */
static void notify_status(struct daemon *d, const char *state)
{
    sd_notify_state("%sSTATUS=%zu listeners, %u workers; reloads: %lu ok, %lu failed",
                    state, d->d_srv.srv_nlisteners, d->d_srv.srv_nworkers,
                    d->d_srv.srv_reloads_ok, d->d_srv.srv_reloads_failed);
}

static void reload(struct daemon *d)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    sd_notify_state("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading %s",
                    (unsigned long long)ts.tv_sec * 1000000ULL +
                        (unsigned long long)ts.tv_nsec / 1000, d->d_config);
    reload_run(&d->d_srv, d->d_config);
    notify_status(d, "READY=1\n");
}

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
        sd_notify_state("STOPPING=1\nSTATUS=stopping");
        server_stop(&d->d_srv, d->d_stops > 1);
        break;
    case SIGHUP:
        if (d->d_stops == 0)
            reload(d);
        break;
    case SIGUSR1:
        if ((rc = log_reopen()) < 0)
            log_error("SIGUSR1: cannot reopen the log file: %s", strerror(-rc));
        break;
    }
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    sd_notify_state("WATCHDOG=1");
}

/* WATCHDOG=1 at half the interval systemd expects, from the main loop: a
 * stuck main thread is what the watchdog should catch. */
static int watch_dog(struct daemon *d)
{
    double interval = sd_watchdog_interval();
    struct timeval tv;

    if (interval <= 0)
        return 0;
    tv.tv_sec = (time_t)(interval / 2);
    tv.tv_usec = (suseconds_t)((interval / 2 - (double)tv.tv_sec) * 1e6);
    if (!(d->d_watchdog = event_new(d->d_base, -1, EV_PERSIST, on_watchdog, d)) ||
        event_add(d->d_watchdog, &tv) < 0)
        return -1;
    return 0;
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
    if (d->d_watchdog)
        event_free(d->d_watchdog);
    if (d->d_base)
        event_base_free(d->d_base);
}

/* ---- running ---------------------------------------------------------------------- */

static int run(struct conf *conf, const struct options *o)
{
    struct daemon d;
    struct conf_errors *errs;
    int rc;

    memset(&d, 0, sizeof(d));
    d.d_config = o->opt_config;
    signal(SIGPIPE, SIG_IGN);
    if (evthread_use_pthreads() < 0 || !(d.d_base = event_base_new()) ||
        watch_signals(&d) < 0 || watch_dog(&d) < 0 || !(errs = conf_errors_new())) {
        fprintf(stderr, "wharfd: cannot set up the main loop\n");
        conf_free(conf);
        daemon_free(&d);
        return EX_OSERR;
    }
    /* bind, drop privileges, then start the workers (SPEC.md section 3) */
    if (priv_check(conf, o->opt_foreground, errs) < 0) {
        report(errs, true);
        conf_errors_free(errs);
        conf_free(conf);
        daemon_free(&d);
        return EX_CONFIG;
    }
    if (server_start(&d.d_srv, d.d_base, conf, errs) < 0 ||
        priv_drop(d.d_srv.srv_conf, errs) < 0 || server_run(&d.d_srv, errs) < 0) {
        report(errs, true);
        conf_errors_free(errs);
        server_free(&d.d_srv);
        daemon_free(&d);
        return EX_OSERR;
    }
    conf_errors_free(errs);
    log_info("ready: %zu listeners, %u workers (wharfd %s, pid %ld)", d.d_srv.srv_nlisteners,
             d.d_srv.srv_nworkers, WHARF_VERSION, (long)getpid());
    notify_status(&d, "READY=1\n");
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
    rc = run(conf, &o);
    log_close();
    return rc;
}
