/* kvruntime.client._centries: the async iterator over a paged range's entries, in C.
 *
 * Entries(fetch, refill) is the compiled twin of _entries.py's
 * ``entries_py`` (an async generator, which stays the reference, and the
 * fallback when this module cannot be imported). It holds the current page
 * (a list) and a position in it. ``__anext__`` hands out the page's next
 * entry through a Ready awaitable that completes at once (no generator
 * frame, no coroutine per entry: ``await`` gets the entry from am_send);
 * only when the page is spent does it return ``refill(self, fetch)``, the
 * Python coroutine that awaits ``fetch()`` for pages until one has entries
 * (``self.load(items)`` then returns the first), or calls ``self.finish()``
 * and raises StopAsyncIteration at the end of the range.
 *
 * Invariants: ``items`` is NULL or a list (a tuple page is copied into one; any other
 * page is a TypeError, which ends the iteration) and ``0 <= pos``; once ``done``
 * (the range read, an error raised mid-scan, or ``aclose``) every
 * ``__anext__`` raises StopAsyncIteration and no page is held. ``busy`` is
 * set by the refill coroutine while it awaits a page: a second concurrent
 * fetch, or ``aclose`` then, is a RuntimeError (as for an async generator).
 * A Ready is reused only when no one else holds it; it hands its entry out
 * once. No global state beyond the two static types.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

/* ---- Ready: an awaitable whose await returns one entry at once ---- */

typedef struct {
    PyObject_HEAD
    PyObject *item; /* the entry its await returns; NULL once handed out */
    char stop;      /* its await raises StopAsyncIteration instead (item is NULL) */
} Ready;

static PyTypeObject ReadyType;

static Ready *
ready_new(PyObject *item)
{
    Ready *self = PyObject_GC_New(Ready, &ReadyType);
    if (self == NULL) {
        return NULL;
    }
    Py_XINCREF(item);
    self->item = item;
    self->stop = 0;
    PyObject_GC_Track(self);
    return self;
}

static int
ready_traverse(Ready *self, visitproc visit, void *arg)
{
    Py_VISIT(self->item);
    return 0;
}

static int
ready_clear(Ready *self)
{
    Py_CLEAR(self->item);
    return 0;
}

static void
ready_dealloc(Ready *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->item);
    PyObject_GC_Del(self);
}

static PyObject *
ready_await(Ready *self)
{
    Py_INCREF(self);
    return (PyObject *)self;
}

static int
ready_spent(Ready *self)
{
    if (self->stop) {
        PyErr_SetNone(PyExc_StopAsyncIteration);
    }
    else {
        PyErr_SetString(PyExc_RuntimeError, "this entry was already awaited");
    }
    return -1;
}

/* The fast path: ``await`` (the SEND opcode) gets the entry as the return value. */
static PySendResult
ready_send(Ready *self, PyObject *arg, PyObject **result)
{
    if (self->item == NULL) {
        ready_spent(self);
        *result = NULL;
        return PYGEN_ERROR;
    }
    *result = self->item; /* the reference moves to the caller */
    self->item = NULL;
    return PYGEN_RETURN;
}

/* The iterator protocol (``yield from``, ``__await__().__next__()``): StopIteration(entry). */
static PyObject *
ready_next(Ready *self)
{
    PyObject *item = self->item;
    if (item == NULL) {
        ready_spent(self);
        return NULL;
    }
    self->item = NULL;
    /* Instantiated here, so a tuple entry is the exception's value, not its args. */
    PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, item);
    Py_DECREF(item);
    if (stop != NULL) {
        PyErr_SetObject(PyExc_StopIteration, stop);
        Py_DECREF(stop);
    }
    return NULL;
}

/* ``send(value)``: as ``__next__`` (the value is ignored, as a just-started coroutine's None). */
static PyObject *
ready_send_method(Ready *self, PyObject *unused)
{
    return ready_next(self);
}

/* ``throw(exc)``: a Ready never suspends, so the exception is raised at once, as into a
 * just-started coroutine; the entry is dropped. */
static PyObject *
ready_throw(Ready *self, PyObject *args)
{
    PyObject *typ, *val = NULL, *tb = NULL;
    if (!PyArg_UnpackTuple(args, "throw", 1, 3, &typ, &val, &tb)) {
        return NULL;
    }
    Py_CLEAR(self->item);
    if (PyExceptionInstance_Check(typ)) {
        PyErr_SetObject((PyObject *)Py_TYPE(typ), typ);
    }
    else if (PyExceptionClass_Check(typ)) {
        PyErr_SetObject(typ, val == NULL ? Py_None : val);
    }
    else {
        PyErr_SetString(PyExc_TypeError, "throw() takes an exception");
    }
    return NULL;
}

/* ``close()``: the entry is dropped, unawaited. */
static PyObject *
ready_close(Ready *self, PyObject *unused)
{
    Py_CLEAR(self->item);
    Py_RETURN_NONE;
}

/* send/throw/close make a Ready a collections.abc.Coroutine, as an async generator's
 * ``__anext__`` awaitable is: asyncio.create_task(anext(scan)) takes either. */
static PyMethodDef ready_methods[] = {
    {"send", (PyCFunction)ready_send_method, METH_O, "send(value) -> raises StopIteration(entry)."},
    {"throw", (PyCFunction)ready_throw, METH_VARARGS, "throw(exc) -> raises exc; the entry is dropped."},
    {"close", (PyCFunction)ready_close, METH_NOARGS, "close() -> None; the entry is dropped."},
    {NULL, NULL, 0, NULL},
};

static PyAsyncMethods ready_async = {
    .am_await = (unaryfunc)ready_await,
    .am_send = (sendfunc)ready_send,
};

static PyTypeObject ReadyType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kvruntime.client._centries.Ready",
    .tp_doc = "An awaitable that returns one entry at once.",
    .tp_basicsize = sizeof(Ready),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_dealloc = (destructor)ready_dealloc,
    .tp_traverse = (traverseproc)ready_traverse,
    .tp_clear = (inquiry)ready_clear,
    .tp_as_async = &ready_async,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)ready_next,
    .tp_methods = ready_methods,
};

/* ---- Entries: the iterator over a range's pages ---- */

typedef struct {
    PyObject_HEAD
    PyObject *fetch;  /* () -> awaitable of the next page's list, or None after the last */
    PyObject *refill; /* (self, fetch) -> coroutine returning the next page's first entry */
    PyObject *items;  /* the current page: a list, or NULL */
    Py_ssize_t pos;   /* the next entry of ``items`` to hand out */
    Ready *ready;     /* the last Ready handed out, reused once no one else holds it */
    char done;
    char busy;
} Entries;

static PyTypeObject EntriesType;

static PyObject *
entries_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *fetch, *refill;
    static char *names[] = {"fetch", "refill", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:Entries", names, &fetch, &refill)) {
        return NULL;
    }
    if (!PyCallable_Check(fetch) || !PyCallable_Check(refill)) {
        PyErr_SetString(PyExc_TypeError, "Entries(fetch, refill) takes two callables");
        return NULL;
    }
    Entries *self = (Entries *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    Py_INCREF(fetch);
    self->fetch = fetch;
    Py_INCREF(refill);
    self->refill = refill;
    return (PyObject *)self;
}

static int
entries_traverse(Entries *self, visitproc visit, void *arg)
{
    Py_VISIT(self->fetch);
    Py_VISIT(self->refill);
    Py_VISIT(self->items);
    Py_VISIT(self->ready);
    return 0;
}

static int
entries_clear(Entries *self)
{
    Py_CLEAR(self->fetch);
    Py_CLEAR(self->refill);
    Py_CLEAR(self->items);
    Py_CLEAR(self->ready);
    return 0;
}

static void
entries_dealloc(Entries *self)
{
    PyObject_GC_UnTrack(self);
    entries_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
entries_aiter(Entries *self)
{
    Py_INCREF(self);
    return (PyObject *)self;
}

/* A Ready returning ``item``: the cached one when only this iterator holds it. */
static PyObject *
ready_for(Entries *self, PyObject *item)
{
    Ready *ready = self->ready;
    if (ready != NULL && Py_REFCNT(ready) == 1) {
        Py_INCREF(item);
        Py_XSETREF(ready->item, item);
        Py_INCREF(ready);
        return (PyObject *)ready;
    }
    ready = ready_new(item);
    if (ready == NULL) {
        return NULL;
    }
    Py_INCREF(ready);
    Py_XSETREF(self->ready, ready);
    return (PyObject *)ready;
}

static PyObject *
entries_anext(Entries *self)
{
    PyObject *items = self->items;
    if (items != NULL && self->pos < PyList_GET_SIZE(items)) {
        return ready_for(self, PyList_GET_ITEM(items, self->pos++));
    }
    if (self->done || self->refill == NULL) {
        /* Raised on await, not here: builtins.anext(it, default) takes no NULL from
         * __anext__ (CPython 3.11 crashes), and an async generator raises it on await too. */
        Ready *stop = ready_new(NULL);
        if (stop != NULL) {
            stop->stop = 1;
        }
        return (PyObject *)stop;
    }
    Py_CLEAR(self->items); /* spent: memory holds the next page alone */
    return PyObject_CallFunctionObjArgs(self->refill, (PyObject *)self, self->fetch, NULL);
}

static PyObject *
entries_load(Entries *self, PyObject *items)
{
    if (self->done) {
        PyErr_SetNone(PyExc_StopAsyncIteration);
        return NULL;
    }
    /* A list is held as it is; a tuple (or a list subclass) is copied into one. */
    if (PyList_CheckExact(items)) {
        Py_INCREF(items);
    }
    else if (PyList_Check(items) || PyTuple_Check(items)) {
        items = PySequence_List(items);
        if (items == NULL) {
            return NULL;
        }
    }
    else {
        PyErr_Format(PyExc_TypeError, "a page of entries is a list, not %.100s",
                     Py_TYPE(items)->tp_name);
        return NULL;
    }
    if (PyList_GET_SIZE(items) == 0) {
        Py_DECREF(items);
        PyErr_SetString(PyExc_ValueError, "load() takes a page with entries");
        return NULL;
    }
    Py_XSETREF(self->items, items);
    self->pos = 1;
    PyObject *first = PyList_GET_ITEM(items, 0);
    Py_INCREF(first);
    return first;
}

static PyObject *
entries_finish(Entries *self, PyObject *unused)
{
    self->done = 1;
    Py_CLEAR(self->items);
    Py_RETURN_NONE;
}

static PyObject *
entries_aclose(Entries *self, PyObject *unused)
{
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "aclose(): the scan is fetching its next page");
        return NULL;
    }
    entries_finish(self, NULL);
    Py_DECREF(Py_None);
    return (PyObject *)ready_new(Py_None);
}

static PyMethodDef entries_methods[] = {
    {"load", (PyCFunction)entries_load, METH_O,
     "load(items, /) -> the first entry: ``items`` (a non-empty list or tuple) becomes the page."},
    {"finish", (PyCFunction)entries_finish, METH_NOARGS,
     "finish() -> None: no entry follows; the page is dropped."},
    {"aclose", (PyCFunction)entries_aclose, METH_NOARGS,
     "aclose() -> awaitable: stop here (no request is left behind)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef entries_members[] = {
    {"busy", T_BOOL, offsetof(Entries, busy), 0, "Whether a page fetch is under way."},
    {"done", T_BOOL, offsetof(Entries, done), READONLY, "Whether no entry follows."},
    {NULL, 0, 0, 0, NULL},
};

static PyAsyncMethods entries_async = {
    .am_aiter = (unaryfunc)entries_aiter,
    .am_anext = (unaryfunc)entries_anext,
};

static PyTypeObject EntriesType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kvruntime.client._centries.Entries",
    .tp_doc = "Entries(fetch, refill): a paged range's entries, one ``__anext__`` each.",
    .tp_basicsize = sizeof(Entries),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = entries_new,
    .tp_dealloc = (destructor)entries_dealloc,
    .tp_traverse = (traverseproc)entries_traverse,
    .tp_clear = (inquiry)entries_clear,
    .tp_as_async = &entries_async,
    .tp_methods = entries_methods,
    .tp_members = entries_members,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "kvruntime.client._centries",
    .m_doc = "The async iterator over a paged range's entries (see _entries.py).",
    .m_size = 0,
};

PyMODINIT_FUNC
PyInit__centries(void)
{
    if (PyType_Ready(&ReadyType) < 0 || PyType_Ready(&EntriesType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&EntriesType);
    if (PyModule_AddObject(m, "Entries", (PyObject *)&EntriesType) < 0) {
        Py_DECREF(&EntriesType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
