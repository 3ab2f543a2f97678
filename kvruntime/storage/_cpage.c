/* kvruntime.storage._cpage: a scan page built in C straight from an engine's iterator.
 *
 * fill_page(raw, include_value, limit, max_bytes) is the compiled twin of
 * store.py's ``fill_page`` (which stays the reference, and the fallback when
 * this module cannot be imported): it pulls entries from ``raw`` (an
 * iterator of (key, value) tuples, or of keys alone without
 * ``include_value``; plyvel's iterator, or any other engine's) with
 * PyIter_Next and writes the page's msgpack bytes (protocol/blobs.py's flat
 * page: ``[bin key, bin value, ...]`` or ``[bin key, ...]``) straight into
 * one bytes object: a bin header and a memcpy per key and value, no Python
 * list, no msgpack object in between.
 *
 * The page rule is store.py's: at most ``limit`` entries, cut before the
 * entry that would take the keys' and values' bytes past ``max_bytes`` (a
 * first entry is taken whatever its size), ``more`` true when an entry
 * follows the last one taken (so at most one entry past the bound is read).
 * Returns (blob, count, last key or None, more).
 *
 * An entry that is not an exact (bytes, bytes) tuple (a bytes key without
 * values) raises TypeError; an exception from ``raw`` propagates as it is
 * (the engine translates its own). Every write is bounds-checked against
 * the buffer's capacity, which grows by doubling; no global state.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Room kept before the body for the array header (array32: 5 bytes). */
#define HEAD 5

typedef struct {
    PyObject *bytes; /* the page being written; NULL once handed over or freed */
    Py_ssize_t len;  /* bytes written, HEAD included */
    Py_ssize_t cap;  /* PyBytes_GET_SIZE(bytes) */
} page_buf;

static int
reserve(page_buf *b, Py_ssize_t more)
{
    if (more > PY_SSIZE_T_MAX - b->len) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t need = b->len + more;
    if (need <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap;
    while (cap < need)
        cap = cap > PY_SSIZE_T_MAX / 2 ? need : 2 * cap;
    if (_PyBytes_Resize(&b->bytes, cap) < 0) /* frees and NULLs b->bytes on failure */
        return -1;
    b->cap = cap;
    return 0;
}

/* A bin of ``size`` bytes at ``data`` (bin8/16/32, as msgpack packs bytes). */
static int
put_bin(page_buf *b, const char *data, Py_ssize_t size)
{
    if ((uint64_t)size > 0xffffffffULL) {
        PyErr_SetString(PyExc_ValueError, "a key or value of 4 GiB or more cannot be packed");
        return -1;
    }
    if (reserve(b, size + 5) < 0)
        return -1;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(b->bytes) + b->len;
    Py_ssize_t head;
    if (size < 0x100) {
        out[0] = 0xc4;
        out[1] = (unsigned char)size;
        head = 2;
    } else if (size < 0x10000) {
        out[0] = 0xc5;
        out[1] = (unsigned char)(size >> 8);
        out[2] = (unsigned char)size;
        head = 3;
    } else {
        out[0] = 0xc6;
        out[1] = (unsigned char)(size >> 24);
        out[2] = (unsigned char)(size >> 16);
        out[3] = (unsigned char)(size >> 8);
        out[4] = (unsigned char)size;
        head = 5;
    }
    memcpy(out + head, data, (size_t)size);
    b->len += head + size;
    return 0;
}

/* The page's bytes: the array header of ``n`` items written just before the
 * body (which moves back over the unused part of HEAD), the rest cut off. */
static PyObject *
finish(page_buf *b, Py_ssize_t n)
{
    unsigned char head[HEAD];
    Py_ssize_t size;
    if (n <= 0x0f) {
        head[0] = (unsigned char)(0x90 | n);
        size = 1;
    } else if (n <= 0xffff) {
        head[0] = 0xdc;
        head[1] = (unsigned char)(n >> 8);
        head[2] = (unsigned char)n;
        size = 3;
    } else {
        head[0] = 0xdd;
        head[1] = (unsigned char)((uint64_t)n >> 24);
        head[2] = (unsigned char)(n >> 16);
        head[3] = (unsigned char)(n >> 8);
        head[4] = (unsigned char)n;
        size = 5;
    }
    char *data = PyBytes_AS_STRING(b->bytes);
    Py_ssize_t body = b->len - HEAD;
    memmove(data + size, data + HEAD, (size_t)body);
    memcpy(data, head, (size_t)size);
    if (_PyBytes_Resize(&b->bytes, size + body) < 0)
        return NULL;
    PyObject *out = b->bytes;
    b->bytes = NULL;
    return out;
}

/* The key and value of an entry (borrowed from ``item``); -1 with TypeError. */
static int
split(PyObject *item, int include_value, PyObject **key, PyObject **value)
{
    if (!include_value) {
        if (!PyBytes_CheckExact(item)) {
            PyErr_Format(PyExc_TypeError, "a page's key must be bytes, not %.100s",
                         Py_TYPE(item)->tp_name);
            return -1;
        }
        *key = item;
        *value = NULL;
        return 0;
    }
    if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2) {
        PyErr_Format(PyExc_TypeError, "a page's entry must be a (key, value) tuple, not %.100s",
                     Py_TYPE(item)->tp_name);
        return -1;
    }
    *key = PyTuple_GET_ITEM(item, 0);
    *value = PyTuple_GET_ITEM(item, 1);
    if (!PyBytes_CheckExact(*key) || !PyBytes_CheckExact(*value)) {
        PyErr_SetString(PyExc_TypeError, "a page's key and value must be bytes");
        return -1;
    }
    return 0;
}

static PyObject *
fill_page(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "fill_page expected 4 arguments, got %zd", nargs);
        return NULL;
    }
    PyObject *raw = args[0];
    int include_value = PyObject_IsTrue(args[1]);
    if (include_value < 0)
        return NULL;
    Py_ssize_t limit = PyLong_AsSsize_t(args[2]);
    if (limit == -1 && PyErr_Occurred())
        return NULL;
    long long max_bytes = PyLong_AsLongLong(args[3]);
    if (max_bytes == -1 && PyErr_Occurred())
        return NULL;
    if (!PyIter_Check(raw)) {
        PyErr_SetString(PyExc_TypeError, "fill_page reads an iterator");
        return NULL;
    }

    page_buf b = {NULL, HEAD, 0};
    b.cap = 4096;
    b.bytes = PyBytes_FromStringAndSize(NULL, b.cap);
    if (b.bytes == NULL)
        return NULL;
    Py_ssize_t count = 0;
    long long size = 0;
    PyObject *last = NULL; /* a strong reference to the last key taken */
    int more = 0;
    PyObject *item, *key, *value;

    while (count < limit) {
        item = PyIter_Next(raw);
        if (item == NULL) {
            if (PyErr_Occurred())
                goto fail;
            break; /* the range is done */
        }
        if (split(item, include_value, &key, &value) < 0) {
            Py_DECREF(item);
            goto fail;
        }
        long long entry = (long long)PyBytes_GET_SIZE(key) +
                          (value == NULL ? 0 : (long long)PyBytes_GET_SIZE(value));
        if (count > 0 && size + entry > max_bytes) { /* cut before it: it is the "more" */
            Py_DECREF(item);
            more = 1;
            goto done;
        }
        if (put_bin(&b, PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key)) < 0 ||
            (value != NULL &&
             put_bin(&b, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value)) < 0)) {
            Py_DECREF(item);
            goto fail;
        }
        Py_INCREF(key);
        Py_XSETREF(last, key);
        Py_DECREF(item);
        count++;
        size += entry; /* past max_bytes only for a lone first entry: the next is cut */
    }
    if (count >= limit) { /* full by count: whether an entry follows */
        item = PyIter_Next(raw);
        if (item == NULL && PyErr_Occurred())
            goto fail;
        more = item != NULL;
        Py_XDECREF(item);
    }
done:;
    PyObject *blob = finish(&b, include_value ? 2 * count : count);
    if (blob == NULL)
        goto fail;
    PyObject *result = Py_BuildValue("(NnOO)", blob, count, last == NULL ? Py_None : last,
                                     more ? Py_True : Py_False);
    Py_XDECREF(last);
    return result;
fail:
    Py_XDECREF(b.bytes);
    Py_XDECREF(last);
    return NULL;
}

static PyMethodDef methods[] = {
    {"fill_page", (PyCFunction)(void (*)(void))fill_page, METH_FASTCALL,
     "fill_page(raw, include_value, limit, max_bytes, /) -> (blob, count, last, more)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "kvruntime.storage._cpage",
    .m_doc = "A scan page built in C straight from an engine's iterator (see store.py's fill_page).",
    .m_size = 0,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__cpage(void)
{
    return PyModule_Create(&module);
}
