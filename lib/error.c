/*
 * error.c: names and descriptions of wharf's error codes (wharf/error.h).
 */
#include "config.h"

#include <string.h>

#include "wharf-int.h"

static const struct {
    int code;
    const char *name;
    const char *text;
} error_table[] = {
    { WHARF_EOF, "EndOfStream", "end of stream" },
    { WHARF_ECLOSED, "ClosedResource", "resource closed" },
    { WHARF_EBROKEN, "BrokenResource", "resource broken: the other end is gone" },
    { WHARF_EINCOMPLETE, "IncompleteRead", "incomplete read: the stream ended first" },
    { WHARF_ENODELIM, "DelimiterNotFound", "delimiter not found within max_bytes" },
    { WHARF_EWOULDBLOCK, "WouldBlock", "operation would block" },
    { WHARF_EBUSY, "BusyResource", "another task is already using this resource" },
    { WHARF_ECANCELLED, "Cancelled", "cancelled" },
    { WHARF_ETIMEDOUT, "TimeoutError", "timed out" },
    { WHARF_ENOTSUP, "NotSupported", "operation not supported by this stream" },
    { WHARF_PARKED, "Parked", "the handler parked (not a failure)" },
};

const char *wharf_errname(int code)
{
    for (size_t i = 0; i < sizeof(error_table) / sizeof(error_table[0]); i++)
        if (error_table[i].code == code)
            return error_table[i].name;
    return NULL;
}

const char *wharf_strerror(int code)
{
    for (size_t i = 0; i < sizeof(error_table) / sizeof(error_table[0]); i++)
        if (error_table[i].code == code)
            return error_table[i].text;
    if (code < 0 && code > -4096)
        return strerror(-code);
    return code == 0 ? "success" : "unknown error";
}
