/* The msgpack reader of the compiled blob decoders (_cblobs.c, _cscan.c): a
 * cursor over one buffer, and the three objects a kv blob is made of (an
 * array header, a bin, a nil). Every read is bounds-checked against the end
 * of the buffer before it happens; each returns -1, and moves the cursor
 * nowhere it may not, for anything that is not the object asked for.
 * Pure: no I/O, no state. Included by both (static inline: one copy each). */

#ifndef KVRUNTIME_CMSGPACK_H
#define KVRUNTIME_CMSGPACK_H

#include <Python.h>
#include <stdint.h>

typedef struct {
    const unsigned char *p;
    const unsigned char *end;
} reader;

static inline int
read_be(reader *r, Py_ssize_t size, uint64_t *out)
{
    if (r->end - r->p < size)
        return -1;
    uint64_t n = 0;
    for (Py_ssize_t i = 0; i < size; i++)
        n = (n << 8) | r->p[i];
    r->p += size;
    *out = n;
    return 0;
}

/* An array header: its length in *n; -1 if the next object is no array. */
static inline int
read_array(reader *r, uint64_t *n)
{
    if (r->p >= r->end)
        return -1;
    unsigned char b = *r->p++;
    if ((b & 0xf0) == 0x90) {
        *n = b & 0x0f;
        return 0;
    }
    if (b == 0xdc)
        return read_be(r, 2, n);
    if (b == 0xdd)
        return read_be(r, 4, n);
    return -1;
}

/* A bin (or, if nil_ok, a nil: then *start is NULL); -1 for anything else. */
static inline int
read_bin(reader *r, int nil_ok, const unsigned char **start, Py_ssize_t *size)
{
    if (r->p >= r->end)
        return -1;
    unsigned char b = *r->p++;
    uint64_t n;
    int rc;
    if (b == 0xc4)
        rc = read_be(r, 1, &n);
    else if (b == 0xc5)
        rc = read_be(r, 2, &n);
    else if (b == 0xc6)
        rc = read_be(r, 4, &n);
    else if (b == 0xc0 && nil_ok) {
        *start = NULL;
        *size = 0;
        return 0;
    }
    else
        return -1;
    if (rc < 0 || (uint64_t)(r->end - r->p) < n)
        return -1;
    *start = r->p;
    *size = (Py_ssize_t)n;
    r->p += n;
    return 0;
}

#endif
