/* kvruntime.client._cstaging: a transaction's staging of writes, with ``set`` in C.
 *
 * Staging is the compiled twin of _staging.py's ``StagingPy`` (which stays the
 * reference, and the fallback when this module cannot be imported), the base of
 * ``Transaction``. It holds the buffered writes (``_writes``: raw key -> raw
 * value, None for a delete), the staged TTLs (``_ttls``: raw key -> ms) and the
 * ``_raw_open`` flag (raw bytes codecs both ways and the block still open).
 *
 * ``set(key, value, *, ttl=None)`` is the hot path of a transaction of many
 * sets: when ``ttl`` is None (or not given), ``_raw_open`` is set, no TTL is
 * staged and ``key`` and ``value`` (positional or keywords) are exactly bytes,
 * it is one PyDict_SetItem (no Python frame). Any other call is handed whole
 * to ``self._set(...)``, the subclass's Python logic, which checks, encodes
 * and raises as the reference does (a bad call's TypeError included).
 *
 * Invariants: ``writes`` and ``ttls`` are exact dicts (their setters refuse
 * anything else), NULL only after a GC clear, which also drops ``raw_open`` so
 * that the fast path never reads them then. No global state beyond the type
 * and the interned name ``_set``.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct {
    PyObject_HEAD
    PyObject *writes; /* dict: bytes -> bytes | None */
    PyObject *ttls;   /* dict: bytes -> int */
    char raw_open;
} Staging;

static PyObject *str_set; /* "_set", interned at import */
static PyObject *str_ttl; /* "ttl", "key", "value": set's keywords */
static PyObject *str_key;
static PyObject *str_value;

static PyObject *
staging_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    /* The subclass's __init__ takes the arguments. */
    Staging *self = (Staging *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->writes = PyDict_New();
    self->ttls = PyDict_New();
    self->raw_open = 0;
    if (self->writes == NULL || self->ttls == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int
staging_traverse(Staging *self, visitproc visit, void *arg)
{
    Py_VISIT(self->writes);
    Py_VISIT(self->ttls);
    return 0;
}

static int
staging_clear(Staging *self)
{
    self->raw_open = 0;
    Py_CLEAR(self->writes);
    Py_CLEAR(self->ttls);
    return 0;
}

static void
staging_dealloc(Staging *self)
{
    /* A static type: a heap subclass's subtype_dealloc visits and drops its own type. */
    PyObject_GC_UnTrack(self);
    staging_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The slow path: self._set(*args, **kwargs), the same arguments as given. */
static PyObject *
staging_slow(Staging *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    Py_ssize_t total = nargs + (kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames));
    PyObject *small[5];
    PyObject **stack = small;
    if (total + 1 > 5) {
        stack = PyMem_Malloc((total + 1) * sizeof(PyObject *));
        if (stack == NULL) {
            return PyErr_NoMemory();
        }
    }
    stack[0] = (PyObject *)self;
    for (Py_ssize_t i = 0; i < total; i++) {
        stack[i + 1] = args[i];
    }
    PyObject *result = PyObject_VectorcallMethod(str_set, stack, (nargs + 1), kwnames);
    if (stack != small) {
        PyMem_Free(stack);
    }
    return result;
}

static int
is_name(PyObject *name, PyObject *interned)
{
    return name == interned || PyUnicode_Compare(name, interned) == 0;
}

static PyObject *
staging_set(Staging *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *key = NULL, *value = NULL;
    if (nargs == 2 && kwnames == NULL) { /* tx.set(key, value): the hot path */
        key = args[0];
        value = args[1];
    }
    else if (nargs <= 2) { /* keyword forms: the same as Python binds them */
        PyObject *ttl = Py_None;
        key = nargs > 0 ? args[0] : NULL;
        value = nargs > 1 ? args[1] : NULL;
        Py_ssize_t count = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t i = 0; i < count; i++) {
            PyObject *name = PyTuple_GET_ITEM(kwnames, i);
            if (is_name(name, str_ttl)) {
                ttl = args[nargs + i];
            }
            else if (key == NULL && is_name(name, str_key)) {
                key = args[nargs + i];
            }
            else if (value == NULL && is_name(name, str_value)) {
                value = args[nargs + i];
            }
            else {
                key = NULL; /* a bad call: Python's logic says how */
                break;
            }
        }
        if (ttl != Py_None) {
            key = NULL;
        }
    }
    if (key != NULL && value != NULL && self->raw_open && PyBytes_CheckExact(key) &&
        PyBytes_CheckExact(value) && PyDict_GET_SIZE(self->ttls) == 0) {
        if (PyDict_SetItem(self->writes, key, value) < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    return staging_slow(self, args, nargs, kwnames);
}

static PyObject *
get_dict(PyObject *dict, const char *name)
{
    if (dict == NULL) {
        PyErr_Format(PyExc_AttributeError, "%s is cleared", name);
        return NULL;
    }
    return Py_NewRef(dict);
}

static int
set_dict(PyObject **slot, PyObject *value, const char *name)
{
    if (value == NULL || !PyDict_CheckExact(value)) {
        PyErr_Format(PyExc_TypeError, "%s must be a dict", name);
        return -1;
    }
    Py_XSETREF(*slot, Py_NewRef(value));
    return 0;
}

static PyObject *
staging_get_writes(Staging *self, void *closure)
{
    return get_dict(self->writes, "_writes");
}

static int
staging_set_writes(Staging *self, PyObject *value, void *closure)
{
    return set_dict(&self->writes, value, "_writes");
}

static PyObject *
staging_get_ttls(Staging *self, void *closure)
{
    return get_dict(self->ttls, "_ttls");
}

static int
staging_set_ttls(Staging *self, PyObject *value, void *closure)
{
    return set_dict(&self->ttls, value, "_ttls");
}

static PyObject *
staging_get_raw_open(Staging *self, void *closure)
{
    return PyBool_FromLong(self->raw_open);
}

static int
staging_set_raw_open(Staging *self, PyObject *value, void *closure)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_TypeError, "_raw_open cannot be deleted");
        return -1;
    }
    int flag = PyObject_IsTrue(value);
    if (flag < 0) {
        return -1;
    }
    self->raw_open = (char)(flag && self->writes != NULL && self->ttls != NULL);
    return 0;
}

static PyGetSetDef staging_getset[] = {
    {"_writes", (getter)staging_get_writes, (setter)staging_set_writes,
     "The buffered writes: raw key -> raw value (None: a delete).", NULL},
    {"_ttls", (getter)staging_get_ttls, (setter)staging_set_ttls,
     "The TTL (ms) of each buffered write that has one.", NULL},
    {"_raw_open", (getter)staging_get_raw_open, (setter)staging_set_raw_open,
     "Raw bytes codecs both ways and the block still open: set's fast path.", NULL},
    {NULL},
};

PyDoc_STRVAR(staging_set_doc,
             "set($self, key, value, *, ttl=None)\n--\n\n"
             "Buffer a write of ``value`` at ``key``; it is applied when the block ends.\n"
             "\n"
             "With ``ttl`` (seconds) the key expires that long after it is staged, at\n"
             "the block's end; without, any expiry it had is cleared.");

static PyMethodDef staging_methods[] = {
    {"set", (PyCFunction)(void (*)(void))staging_set, METH_FASTCALL | METH_KEYWORDS,
     staging_set_doc},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS, "See PEP 585."},
    {NULL},
};

static PyTypeObject StagingType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "kvruntime.client._cstaging.Staging",
    .tp_doc = PyDoc_STR("A transaction's buffered writes; set's hot path in C."),
    .tp_basicsize = sizeof(Staging),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = staging_new,
    .tp_traverse = (traverseproc)staging_traverse,
    .tp_clear = (inquiry)staging_clear,
    .tp_dealloc = (destructor)staging_dealloc,
    .tp_methods = staging_methods,
    .tp_getset = staging_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "kvruntime.client._cstaging",
    .m_doc = "A transaction's staging of writes, with set's hot path in C.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__cstaging(void)
{
    str_set = PyUnicode_InternFromString("_set");
    str_ttl = PyUnicode_InternFromString("ttl");
    str_key = PyUnicode_InternFromString("key");
    str_value = PyUnicode_InternFromString("value");
    if (str_set == NULL || str_ttl == NULL || str_key == NULL || str_value == NULL ||
        PyType_Ready(&StagingType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&StagingType);
    if (PyModule_AddObject(m, "Staging", (PyObject *)&StagingType) < 0) {
        Py_DECREF(&StagingType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
