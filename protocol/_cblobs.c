/* protocol._cblobs: the batch blobs and scan pages of protocol/blobs.py, read and
 * written in C.
 *
 * Pure functions (no I/O, no global state), each a faster twin of a
 * pure-Python function of blobs.py that stays the reference (and the
 * fallback when this module cannot be imported):
 *
 * - decode_items(data, count): the (key, value) pairs of a SetMany blob
 *   ``[[bin, bin], ...]``, or None when blobs.py's decoder would refuse it;
 * - decode_writes(data, count): the same for ``[[bin, bin | nil], ...]``;
 * - encode_items(pairs, max_key, max_value): msgpack's bytes for a list of
 *   exact (bytes, bytes) tuples within the limits, or None for anything else
 *   (the caller then takes the Python path, which names what is wrong);
 * - encode_writes(writes, max_key, max_value): the same, a value may be None;
 * - ops_fit(ops, max_key, max_value, reserved): whether every (key, value)
 *   tuple of a list has a bytes key within max_key that sorts below
 *   ``reserved`` and a bytes (or None) value within max_value.
 * - decode_scan_page(data, count, keys_only): the (key, value) tuples of a
 *   flat page ``[bin key, bin value, ...]`` (``(key, None)`` from
 *   ``[bin key, ...]`` when keys_only), or None when blobs.py would refuse it.
 *
 * Decoding is exactly as strict as blobs.py's: exactly ``count`` entries, each
 * an array of two (any array format), bin in every position (nil for a
 * delete's value), nothing after the array; a page is one array of exactly
 * ``2 * count`` bins (``count`` when keys_only). Every read is bounds-checked
 * against the end of the buffer before it happens. A refused blob gives None
 * (never an exception of ours): blobs.py then runs its Python decoder on it,
 * which raises DecodeError with its own message, so both paths fail alike.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static int
check_nargs(const char *name, Py_ssize_t nargs, Py_ssize_t expected)
{
    if (nargs == expected)
        return 1;
    PyErr_Format(PyExc_TypeError, "%s expected %zd arguments, got %zd", name, expected, nargs);
    return 0;
}

/* --- reading ---------------------------------------------------------------- */

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

/* The checks of the whole blob, with nothing built: 0 if well formed, else -1. */
static int
check_pairs(const unsigned char *data, Py_ssize_t len, Py_ssize_t count, int nil_ok)
{
    reader r = {data, data + len};
    uint64_t n;
    if (read_array(&r, &n) < 0 || n != (uint64_t)count)
        return -1;
    for (Py_ssize_t i = 0; i < count; i++) {
        const unsigned char *s;
        Py_ssize_t size;
        if (read_array(&r, &n) < 0 || n != 2 || read_bin(&r, 0, &s, &size) < 0 ||
            read_bin(&r, nil_ok, &s, &size) < 0)
            return -1;
    }
    return r.p == r.end ? 0 : -1;
}

/* The pairs of a blob already checked by check_pairs (so every read succeeds). */
static PyObject *
build_pairs(const unsigned char *data, Py_ssize_t len, Py_ssize_t count, int nil_ok)
{
    reader r = {data, data + len};
    uint64_t n;
    PyObject *list = PyList_New(count);
    if (list == NULL)
        return NULL;
    (void)read_array(&r, &n);
    for (Py_ssize_t i = 0; i < count; i++) {
        const unsigned char *ks, *vs;
        Py_ssize_t ksize, vsize;
        (void)read_array(&r, &n);
        (void)read_bin(&r, 0, &ks, &ksize);
        (void)read_bin(&r, nil_ok, &vs, &vsize);
        PyObject *key = PyBytes_FromStringAndSize((const char *)ks, ksize);
        if (key == NULL)
            goto fail;
        PyObject *value;
        if (vs == NULL) {
            value = Py_NewRef(Py_None);
        }
        else {
            value = PyBytes_FromStringAndSize((const char *)vs, vsize);
            if (value == NULL) {
                Py_DECREF(key);
                goto fail;
            }
        }
        PyObject *pair = PyTuple_New(2);
        if (pair == NULL) {
            Py_DECREF(key);
            Py_DECREF(value);
            goto fail;
        }
        PyTuple_SET_ITEM(pair, 0, key);
        PyTuple_SET_ITEM(pair, 1, value);
        PyList_SET_ITEM(list, i, pair);
    }
    return list;
fail:
    Py_DECREF(list); /* the unset slots are NULL, which list_dealloc skips */
    return NULL;
}

static PyObject *
decode(PyObject *const *args, Py_ssize_t nargs, const char *name, int nil_ok)
{
    if (!check_nargs(name, nargs, 2))
        return NULL;
    PyObject *data = args[0];
    Py_ssize_t count = PyLong_AsSsize_t(args[1]);
    if (count == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return NULL;
        PyErr_Clear();
        Py_RETURN_NONE; /* a count no blob can hold: refused */
    }
    if (!PyBytes_Check(data) || count < 0)
        Py_RETURN_NONE;
    const unsigned char *buf = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t len = PyBytes_GET_SIZE(data);
    if (check_pairs(buf, len, count, nil_ok) < 0)
        Py_RETURN_NONE;
    return build_pairs(buf, len, count, nil_ok);
}

static PyObject *
decode_items(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    return decode(args, nargs, "decode_items", 0);
}

static PyObject *
decode_writes(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    return decode(args, nargs, "decode_writes", 1);
}

/* --- writing ---------------------------------------------------------------- */

static inline Py_ssize_t
array_header_size(Py_ssize_t n)
{
    return n <= 0x0f ? 1 : n <= 0xffff ? 3 : 5;
}

static inline Py_ssize_t
bin_header_size(Py_ssize_t n)
{
    return n <= 0xff ? 2 : n <= 0xffff ? 3 : 5;
}

static inline unsigned char *
put_be(unsigned char *out, uint64_t n, int size)
{
    for (int i = size - 1; i >= 0; i--) {
        out[i] = (unsigned char)(n & 0xff);
        n >>= 8;
    }
    return out + size;
}

static inline unsigned char *
put_array(unsigned char *out, Py_ssize_t n)
{
    if (n <= 0x0f) {
        *out++ = (unsigned char)(0x90 | n);
        return out;
    }
    if (n <= 0xffff) {
        *out++ = 0xdc;
        return put_be(out, (uint64_t)n, 2);
    }
    *out++ = 0xdd;
    return put_be(out, (uint64_t)n, 4);
}

static inline unsigned char *
put_bin(unsigned char *out, PyObject *bytes)
{
    Py_ssize_t n = PyBytes_GET_SIZE(bytes);
    if (n <= 0xff) {
        *out++ = 0xc4;
        *out++ = (unsigned char)n;
    }
    else if (n <= 0xffff) {
        *out++ = 0xc5;
        out = put_be(out, (uint64_t)n, 2);
    }
    else {
        *out++ = 0xc6;
        out = put_be(out, (uint64_t)n, 4);
    }
    memcpy(out, PyBytes_AS_STRING(bytes), (size_t)n);
    return out + n;
}

/* The size of the blob of ``pairs`` if each is an exact (bytes, bytes) tuple
 * (a None value if nil_ok) within the limits; -1 otherwise (no error set). */
static Py_ssize_t
pairs_size(PyObject *pairs, Py_ssize_t max_key, Py_ssize_t max_value, int nil_ok)
{
    Py_ssize_t count = PyList_GET_SIZE(pairs);
    if (count > 0xffffffffLL)
        return -1;
    Py_ssize_t total = array_header_size(count);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *pair = PyList_GET_ITEM(pairs, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2)
            return -1;
        PyObject *key = PyTuple_GET_ITEM(pair, 0), *value = PyTuple_GET_ITEM(pair, 1);
        if (!PyBytes_CheckExact(key) || PyBytes_GET_SIZE(key) > max_key ||
            PyBytes_GET_SIZE(key) > 0xffffffffLL)
            return -1;
        Py_ssize_t ksize = PyBytes_GET_SIZE(key);
        total += 1 + bin_header_size(ksize) + ksize;
        if (value == Py_None && nil_ok) {
            total += 1;
            continue;
        }
        if (!PyBytes_CheckExact(value) || PyBytes_GET_SIZE(value) > max_value ||
            PyBytes_GET_SIZE(value) > 0xffffffffLL)
            return -1;
        Py_ssize_t vsize = PyBytes_GET_SIZE(value);
        total += bin_header_size(vsize) + vsize;
        if (total > PY_SSIZE_T_MAX / 2)
            return -1;
    }
    return total;
}

static PyObject *
encode(PyObject *const *args, Py_ssize_t nargs, const char *name, int nil_ok)
{
    if (!check_nargs(name, nargs, 3))
        return NULL;
    PyObject *pairs = args[0];
    Py_ssize_t max_key = PyLong_AsSsize_t(args[1]);
    if (max_key == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t max_value = PyLong_AsSsize_t(args[2]);
    if (max_value == -1 && PyErr_Occurred())
        return NULL;
    if (!PyList_CheckExact(pairs))
        Py_RETURN_NONE;
    Py_ssize_t size = pairs_size(pairs, max_key, max_value, nil_ok);
    if (size < 0)
        Py_RETURN_NONE;
    PyObject *blob = PyBytes_FromStringAndSize(NULL, size);
    if (blob == NULL)
        return NULL;
    /* No Python code runs between the sizing pass and here, so the list and its
     * exact tuples and bytes (immutable) are what was measured. */
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(blob);
    Py_ssize_t count = PyList_GET_SIZE(pairs);
    out = put_array(out, count);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *pair = PyList_GET_ITEM(pairs, i);
        PyObject *value = PyTuple_GET_ITEM(pair, 1);
        *out++ = 0x92;
        out = put_bin(out, PyTuple_GET_ITEM(pair, 0));
        if (value == Py_None)
            *out++ = 0xc0;
        else
            out = put_bin(out, value);
    }
    assert(out == (unsigned char *)PyBytes_AS_STRING(blob) + size);
    return blob;
}

static PyObject *
encode_items(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    return encode(args, nargs, "encode_items", 0);
}

static PyObject *
encode_writes(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    return encode(args, nargs, "encode_writes", 1);
}

/* --- checking --------------------------------------------------------------- */

static PyObject *
ops_fit(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!check_nargs("ops_fit", nargs, 4))
        return NULL;
    PyObject *ops = args[0], *reserved = args[3];
    Py_ssize_t max_key = PyLong_AsSsize_t(args[1]);
    if (max_key == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t max_value = PyLong_AsSsize_t(args[2]);
    if (max_value == -1 && PyErr_Occurred())
        return NULL;
    if (!PyBytes_Check(reserved)) {
        PyErr_SetString(PyExc_TypeError, "ops_fit: reserved must be bytes");
        return NULL;
    }
    if (!PyList_CheckExact(ops))
        Py_RETURN_FALSE;
    const char *rs = PyBytes_AS_STRING(reserved);
    Py_ssize_t rsize = PyBytes_GET_SIZE(reserved);
    Py_ssize_t count = PyList_GET_SIZE(ops);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *op = PyList_GET_ITEM(ops, i);
        if (!PyTuple_CheckExact(op) || PyTuple_GET_SIZE(op) != 2)
            Py_RETURN_FALSE;
        PyObject *key = PyTuple_GET_ITEM(op, 0), *value = PyTuple_GET_ITEM(op, 1);
        if (!PyBytes_CheckExact(key))
            Py_RETURN_FALSE;
        Py_ssize_t ksize = PyBytes_GET_SIZE(key);
        if (ksize > max_key)
            Py_RETURN_FALSE;
        /* key < reserved, as bytes compare: memcmp of the common part, then length */
        Py_ssize_t common = ksize < rsize ? ksize : rsize;
        int c = memcmp(PyBytes_AS_STRING(key), rs, (size_t)common);
        if (c > 0 || (c == 0 && ksize >= rsize))
            Py_RETURN_FALSE;
        if (value != Py_None &&
            (!PyBytes_CheckExact(value) || PyBytes_GET_SIZE(value) > max_value))
            Py_RETURN_FALSE;
    }
    Py_RETURN_TRUE;
}

/* --- scan pages: [bin key, bin value, ...] or [bin key, ...] (keys only) --- */

/* A bin, as a new bytes object; NULL without an exception if the next
 * object is no bin or runs past the end, NULL with one (memory) else. */
static PyObject *
bin_object(reader *r)
{
    const unsigned char *start;
    Py_ssize_t size;
    if (read_bin(r, 0, &start, &size) < 0)
        return NULL;
    return PyBytes_FromStringAndSize((const char *)start, size);
}

static PyObject *
decode_scan_page(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "decode_scan_page expected 3 arguments, got %zd", nargs);
        return NULL;
    }
    PyObject *data = args[0];
    int keys_only = PyObject_IsTrue(args[2]);
    if (keys_only < 0)
        return NULL;
    if (!PyBytes_Check(data) || !PyLong_Check(args[1]))
        Py_RETURN_NONE;
    int overflow = 0;
    long long count = PyLong_AsLongLongAndOverflow(args[1], &overflow);
    if (count == -1 && PyErr_Occurred())
        return NULL;
    /* a count no page of this buffer can hold: the reference refuses it */
    if (overflow || count < 0 || count > (long long)PyBytes_GET_SIZE(data))
        Py_RETURN_NONE;

    reader r;
    r.p = (const unsigned char *)PyBytes_AS_STRING(data);
    r.end = r.p + PyBytes_GET_SIZE(data);
    uint64_t items;
    if (read_array(&r, &items) < 0)
        Py_RETURN_NONE;
    if (items != (uint64_t)(keys_only ? count : 2 * count))
        Py_RETURN_NONE;

    PyObject *page = PyList_New((Py_ssize_t)count);
    if (page == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < (Py_ssize_t)count; i++) {
        PyObject *key = bin_object(&r);
        if (key == NULL)
            goto refused;
        PyObject *value;
        if (keys_only) {
            value = Py_None;
            Py_INCREF(value);
        } else {
            value = bin_object(&r);
            if (value == NULL) {
                Py_DECREF(key);
                goto refused;
            }
        }
        PyObject *entry = PyTuple_New(2);
        if (entry == NULL) {
            Py_DECREF(key);
            Py_DECREF(value);
            goto refused;
        }
        PyTuple_SET_ITEM(entry, 0, key);
        PyTuple_SET_ITEM(entry, 1, value);
        PyList_SET_ITEM(page, i, entry); /* the list's unset items are NULL: safe to free */
    }
    if (r.p != r.end) /* trailing bytes */
        goto refused;
    return page;
refused:
    Py_DECREF(page);
    if (PyErr_Occurred()) /* out of memory: that is not a refusal */
        return NULL;
    Py_RETURN_NONE;
}

/* --- the module ------------------------------------------------------------- */

static PyMethodDef methods[] = {
    {"decode_scan_page", (PyCFunction)(void (*)(void))decode_scan_page, METH_FASTCALL,
     "decode_scan_page(data, count, keys_only): the page's (key, value) list, or None if "
     "refused."},
    {"decode_items", (PyCFunction)(void (*)(void))decode_items, METH_FASTCALL,
     "decode_items(data, count): the pairs of a [[bin, bin], ...] blob, or None if refused."},
    {"decode_writes", (PyCFunction)(void (*)(void))decode_writes, METH_FASTCALL,
     "decode_writes(data, count): the ops of a [[bin, bin | nil], ...] blob, or None."},
    {"encode_items", (PyCFunction)(void (*)(void))encode_items, METH_FASTCALL,
     "encode_items(pairs, max_key, max_value): the blob of exact (bytes, bytes) tuples "
     "within the limits, or None."},
    {"encode_writes", (PyCFunction)(void (*)(void))encode_writes, METH_FASTCALL,
     "encode_writes(writes, max_key, max_value): encode_items, a value may be None."},
    {"ops_fit", (PyCFunction)(void (*)(void))ops_fit, METH_FASTCALL,
     "ops_fit(ops, max_key, max_value, reserved): every op a (bytes key < reserved "
     "within max_key, bytes value within max_value or None) tuple."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "protocol._cblobs",
    .m_doc = "The batch blobs of protocol/blobs.py, read and written in C (pure functions).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__cblobs(void)
{
    return PyModuleDef_Init(&module_def);
}
