/*
 * check_reload.c: reload_run (src/reload.c) against a running set of
 * listeners (server.c, real worker threads), for what the functional tests
 * cannot reach from outside: an allocation that fails in the middle of a
 * reload. realloc is wrapped (-Wl,--wrap=realloc, for the objects linked
 * into this program: the daemon's and the runtime's) so that the test can
 * make the realloc of one block fail.
 * Not for: what a reload does to traffic (tests/func/test_reload.py).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "testutil.h"
#include "wharfd.h"

void *__real_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n);

static void *fail_realloc_of;          /* a realloc of this block fails */

void *__wrap_realloc(void *p, size_t n)
{
    if (p && p == fail_realloc_of)
        return NULL;
    return __real_realloc(p, n);
}

static const char *plugin_dir(void)
{
    static char dir[4096];
    const char *b = getenv("WHARF_BUILDDIR");

    ck_assert_msg(b != NULL, "WHARF_BUILDDIR is not set (run through make check)");
    snprintf(dir, sizeof(dir), "%s/tests/plugins/.libs", b);
    return dir;
}

/* The config: one UNIX listener (plugin good) per name, in the tmpdir. */
static void write_conf(const char *path, const char *const *names)
{
    FILE *fp = fopen(path, "w");

    ck_assert_ptr_nonnull(fp);
    fprintf(fp, "workers = 2;\nplugin_dir = \"%s\";\nlisteners = (\n", plugin_dir());
    for (size_t i = 0; names[i]; i++)
        fprintf(fp, "  %s{ name = \"%s\"; unix = \"%s/%s.sock\"; handler = \"good\"; }\n",
                i ? "," : "", names[i], tu_tmpdir(), names[i]);
    fprintf(fp, ");\n");
    ck_assert_int_eq(fclose(fp), 0);
}

/* A reload that would remove a listener cannot grow the draining list: it
 * fails and changes nothing (the kept listener keeps its generation, the
 * one to remove still runs, the old file still rules); the same reload
 * works once memory is back. */
START_TEST(enomem_changes_nothing)
{
    static const char *const abc[] = { "a", "b", "c", NULL };
    static const char *const ab[] = { "a", "b", NULL };
    static const char *const a[] = { "a", NULL };
    struct event_base *base = event_base_new();
    struct conf_errors *errs = conf_errors_new();
    struct server srv;
    struct conf *conf, *was;
    struct lgen *gen;
    char path[512];

    ck_assert_ptr_nonnull(base);
    snprintf(path, sizeof(path), "%s/wharf.conf", tu_tmpdir());
    write_conf(path, abc);
    ck_assert_ptr_nonnull(conf = reload_load(path, errs));
    ck_assert_int_eq(server_start(&srv, base, conf, errs), 0);
    ck_assert_int_eq(server_run(&srv, errs), 0);
    /* a first reload removes c: the draining list exists from then on */
    write_conf(path, ab);
    ck_assert_int_eq(reload_run(&srv, path), 0);
    ck_assert_ptr_nonnull(srv.srv_draining);

    write_conf(path, a);
    was = srv.srv_conf;
    gen = srv.srv_listeners[0]->lst_gen;
    fail_realloc_of = srv.srv_draining;
    ck_assert_int_eq(reload_run(&srv, path), -1);
    fail_realloc_of = NULL;
    ck_assert_ptr_eq(srv.srv_conf, was);
    ck_assert_uint_eq(srv.srv_nlisteners, 2);
    ck_assert_str_eq(srv.srv_listeners[1]->lst_name, "b");
    ck_assert(!srv.srv_listeners[1]->lst_draining);
    ck_assert_ptr_eq(srv.srv_listeners[0]->lst_gen, gen);
    ck_assert_uint_eq(srv.srv_reloads_failed, 1);
    ck_assert_uint_eq(srv.srv_reloads_ok, 1);
    ck_assert_ptr_nonnull(strstr(srv.srv_reload_error, "reload: Cannot allocate memory"));

    ck_assert_int_eq(reload_run(&srv, path), 0);
    ck_assert_uint_eq(srv.srv_nlisteners, 1);
    ck_assert_uint_eq(srv.srv_reloads_ok, 2);

    server_stop(&srv, true);
    event_base_dispatch(base);
    server_free(&srv);
    conf_errors_free(errs);
    event_base_free(base);
}
END_TEST

static Suite *reload_suite(void)
{
    Suite *s = suite_create("reload");
    TCase *tc = tcase_create("commit");

    tcase_add_test(tc, enomem_changes_nothing);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(reload_suite());
}
