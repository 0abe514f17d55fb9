/*
 * wharf/wharf.h: the whole plugin API of wharf, and its version.
 *
 * Versioning: WHARF_API_MAJOR changes when anything a built plugin relies on
 * changes incompatibly (a removed or changed function, struct layout or
 * meaning); WHARF_API_MINOR grows when something is added. wharfd loads a
 * plugin whose major equals its own and whose minor is at most its own.
 * The headers include only libc, OpenSSL and jansson types.
 */
#ifndef WHARF_WHARF_H
#define WHARF_WHARF_H

#define WHARF_VERSION "0.1.0"
#define WHARF_API_MAJOR 0
#define WHARF_API_MINOR 4

#include <wharf/error.h>
#include <wharf/task.h>
#include <wharf/stream.h>
#include <wharf/memstream.h>
#include <wharf/net.h>
#include <wharf/file.h>

#endif /* WHARF_WHARF_H */
