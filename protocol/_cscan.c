/* protocol._cscan: a scan page of protocol/blobs.py decoded in C.
 *
 * decode_scan_page(data, count, keys_only) is the compiled twin of
 * blobs.py's Python decoder of a page (which stays the reference, and the
 * fallback when this module cannot be imported): from the flat page
 * ``[bin key, bin value, ...]`` (``[bin key, ...]`` when keys_only) it
 * builds the list of ``(key, value)`` tuples (``(key, None)`` when
 * keys_only) with no msgpack object in between.
 *
 * As strict as the reference: ``data`` is bytes; one array (any array
 * format) of exactly ``2 * count`` items (``count`` when keys_only), every
 * one a bin (any bin format), nothing after it. Every read is checked
 * against the end of the buffer before it happens. A refused page gives
 * None, never an exception of ours: blobs.py then runs the reference on it,
 * which raises DecodeError with its own message, so both paths fail alike.
 * Pure: no I/O, no global state.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_cmsgpack.h"

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

static PyMethodDef methods[] = {
    {"decode_scan_page", (PyCFunction)(void (*)(void))decode_scan_page, METH_FASTCALL,
     "decode_scan_page(data, count, keys_only, /) -> list of (key, value), or None if refused"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "protocol._cscan",
    .m_doc = "A scan page of protocol/blobs.py decoded in C (see blobs.py's decode_scan_page).",
    .m_size = 0,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__cscan(void)
{
    return PyModule_Create(&module);
}
