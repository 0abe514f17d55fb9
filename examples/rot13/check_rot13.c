/*
 * check_rot13.c: the rot13 plugin's unit test, with Check and wharf's test
 * kit (wharf/testkit.h): the handler serves an in-memory connection, as
 * wharfd would serve a socket, while the test plays the client. No socket,
 * no wharfd: the plugin's source is compiled into this program, which
 * calls its descriptor, `wharf_plugin`, directly (see the Makefile beside
 * it: `make check`).
 */
#include <check.h>
#include <wharf/plugin.h>
#include <wharf/testkit.h>

/* An instance that must be accepted. */
static void *init_ok(const char *options)
{
    struct wharf_plugin_error err;
    void *r = wharf_testkit_init(&wharf_plugin, options, NULL, &err);

    ck_assert_msg(r != NULL, "%s rejected: [%s] %s", options, err.key, err.message);
    return r;
}

START_TEST(lines)
{
    void *r = init_ok("{}");
    char reply[256];
    int rc;

    /* each line comes back encoded (without a \r before its \n); QUIT ends it all */
    ck_assert_int_eq(wharf_testkit_talk(&wharf_plugin, r, "Hello, World\r\nnop\nQUIT\nlost\n",
                                        0, reply, sizeof(reply), &rc), 0);
    ck_assert_str_eq(reply, "Uryyb, Jbeyq\nabc\n");
    ck_assert_int_eq(rc, 0);
    /* so does the client's end of stream, even after a line cut short */
    ck_assert_int_eq(wharf_testkit_talk(&wharf_plugin, r, "abc\nxyz", WHARF_TESTKIT_EOF,
                                        reply, sizeof(reply), &rc), 0);
    ck_assert_str_eq(reply, "nop\n");
    ck_assert_int_eq(rc, 0);
    wharf_testkit_fini(&wharf_plugin, r);
}
END_TEST

/* One line at a time, from a task of the test's own: each answer comes
 * before the next line is sent. */
static int one_by_one(void *arg)
{
    struct wharf_testkit_conn *conn;
    struct wharf_stream *client;
    char line[64];
    ssize_t n;

    ck_assert_int_eq(wharf_testkit_open(&wharf_plugin, arg, 0, &conn), 0);
    client = wharf_testkit_client(conn);
    ck_assert_int_eq(wharf_testkit_send_all(client, "wharf\n", 0), 0);
    n = wharf_receive_until(client, "\n", 1, line, sizeof(line));
    ck_assert_int_eq(n, 5);
    ck_assert_mem_eq(line, "junes", 5);
    ck_assert_int_eq(wharf_testkit_send_all(client, "QUIT\n", 0), 0);
    ck_assert_int_eq(wharf_receive(client, line, sizeof(line)), WHARF_EOF);
    ck_assert_int_eq(wharf_testkit_close(conn), 0);
    return 0;
}

START_TEST(line_by_line)
{
    void *r = init_ok("{\"timeout\": 2}");

    ck_assert_int_eq(wharf_run(one_by_one, r), 0);
    wharf_testkit_fini(&wharf_plugin, r);
}
END_TEST

START_TEST(timeout)
{
    /* a nanosecond: no answer is in time (a deadline already passed
     * cancels the scope at once) */
    void *r = init_ok("{\"timeout\": 1e-9}");
    char reply[256];
    int rc;

    ck_assert_int_eq(wharf_testkit_talk(&wharf_plugin, r, "Hello\nQUIT\n", 0,
                                        reply, sizeof(reply), &rc), 0);
    ck_assert_str_eq(reply, "ERR timeout\n");
    ck_assert_int_eq(rc, WHARF_ETIMEDOUT);
    wharf_testkit_fini(&wharf_plugin, r);
}
END_TEST

START_TEST(options)
{
    struct wharf_plugin_error err;

    ck_assert_ptr_null(wharf_testkit_init(&wharf_plugin, "{\"timeot\": 2}", NULL, &err));
    ck_assert_str_eq(err.key, "timeot");
    ck_assert_str_eq(err.message, "unknown option \"timeot\" (rot13 takes timeout)");
    ck_assert_ptr_null(wharf_testkit_init(&wharf_plugin, "{\"timeout\": 0}", NULL, &err));
    ck_assert_str_eq(err.key, "timeout");
    ck_assert_str_eq(err.message, "timeout must be a positive number");
    ck_assert_ptr_null(wharf_testkit_init(&wharf_plugin, "{\"timeout\": \"2\"}", NULL, &err));
    ck_assert_str_eq(err.key, "timeout");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rot13");
    TCase *tc = tcase_create("rot13");
    SRunner *sr = srunner_create(s);
    int failed;

    tcase_add_test(tc, lines);
    tcase_add_test(tc, line_by_line);
    tcase_add_test(tc, timeout);
    tcase_add_test(tc, options);
    suite_add_tcase(s, tc);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
