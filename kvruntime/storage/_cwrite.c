/* kvruntime.storage._cwrite: a batch's ops handed to a write batch, in C.
 *
 * apply(ops, put, delete): for each (key, value) tuple of the list ``ops``,
 * in order, ``delete(key)`` if value is None, else ``put(key, value)``; each
 * a vectorcall (the engine passes a plyvel WriteBatch's bound methods). It is
 * the Python loop ``for key, value in ops: ...`` of LevelDbStore.write
 * without the interpreter's per-op work; an exception from a call, or an op
 * that is no tuple of two, stops it with that exception (the caller then
 * drops the whole write batch: nothing of it is written).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *
apply(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "apply expected 3 arguments, got %zd", nargs);
        return NULL;
    }
    PyObject *ops = args[0], *put = args[1], *delete = args[2];
    if (!PyList_Check(ops)) {
        PyErr_SetString(PyExc_TypeError, "apply: ops must be a list");
        return NULL;
    }
    /* The size is read anew each step: a call may (in theory) change the list. */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(ops); i++) {
        PyObject *op = PyList_GET_ITEM(ops, i);
        if (!PyTuple_Check(op) || PyTuple_GET_SIZE(op) != 2) {
            PyErr_Format(PyExc_TypeError, "apply: op %zd is not a (key, value) tuple", i);
            return NULL;
        }
        Py_INCREF(op); /* held while its items are in use */
        PyObject *call[2] = {PyTuple_GET_ITEM(op, 0), PyTuple_GET_ITEM(op, 1)};
        PyObject *result = call[1] == Py_None ? PyObject_Vectorcall(delete, call, 1, NULL)
                                              : PyObject_Vectorcall(put, call, 2, NULL);
        Py_DECREF(op);
        if (result == NULL)
            return NULL;
        Py_DECREF(result);
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"apply", (PyCFunction)(void (*)(void))apply, METH_FASTCALL,
     "apply(ops, put, delete): put(key, value) per op, delete(key) where value is None."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "kvruntime.storage._cwrite",
    .m_doc = "A batch's ops handed to a write batch, in C.",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__cwrite(void)
{
    return PyModuleDef_Init(&module_def);
}
