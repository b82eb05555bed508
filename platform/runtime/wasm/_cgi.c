/*
 * edgelet.runtime.wasm._cgi: one CGI request of a Wasm command module, in C.
 *
 * Why C: a CGI module gets a fresh Store, WASI context and instance per request. Driving
 * the dozen wasmtime C-API calls that takes from Python (ctypes), plus a Python callback
 * for every fd_write, cost ~30 us per request, twice what a whole Python hello-world
 * handler costs in its isolate. Here the request is one call from Python: the store is
 * built, the module runs with stdio served by the C callbacks below, the store is deleted,
 * and Python gets back (stdout, stderr, exit code, error) to turn into a response.
 *
 * Why no wasmtime headers: the wasmtime wheel ships only libwasmtime.so. The few types
 * used here are declared below exactly as wasmtime-py's own bindings declare them (for
 * the wasmtime version pyproject.toml pins), the symbols are looked up in the library
 * wasmtime-py already loaded, and edgelet.runtime.wasm.native checks the struct sizes against
 * wasmtime-py's ctypes definitions before it uses this module at all.
 *
 * Safety rules, as in edgelet.runtime.wasm.abi: every guest pointer and length is checked against
 * the guest's memory before a byte is touched, and the GIL is released while Wasm runs
 * (the epoch ticker thread, which interrupts runaway modules, needs it).
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE /* memmem */
#include <Python.h>
#include <ctype.h>
#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* -- wasmtime types (opaque, or laid out as in wasmtime-py's _bindings.py) ------------ */
typedef struct wasm_engine_t wasm_engine_t;
typedef struct wasmtime_store_t wasmtime_store_t;
typedef struct wasmtime_context_t wasmtime_context_t;
typedef struct wasmtime_caller_t wasmtime_caller_t;
typedef struct wasmtime_error_t wasmtime_error_t;
typedef struct wasm_trap_t wasm_trap_t;
typedef struct wasi_config_t wasi_config_t;
typedef struct wasmtime_instance_pre_t wasmtime_instance_pre_t;

typedef struct { uint64_t store_id; size_t private_; } wasmtime_instance_t;
typedef struct { uint64_t store_id; void *private_; } wasmtime_func_t;
typedef struct { struct { uint64_t store_id; uint32_t private1; } anon; uint32_t private2; } wasmtime_memory_t;
typedef struct { uint64_t store_id; uint32_t p1, p2, p3; } wasmtime_global_t;
typedef union {
    wasmtime_func_t func;
    wasmtime_global_t global;
    wasmtime_memory_t memory;
    void *sharedmemory;
} wasmtime_extern_union_t;
typedef struct { uint8_t kind; wasmtime_extern_union_t of; } wasmtime_extern_t;
typedef union {
    int32_t i32; int64_t i64; float f32; double f64; uint8_t v128[16]; void *funcref;
} wasmtime_val_raw_t;

/* -- the C-API functions, looked up once by bind() ------------------------------------ */
static wasmtime_store_t *(*store_new)(wasm_engine_t *, void *, void (*)(void *));
static wasmtime_context_t *(*store_context)(wasmtime_store_t *);
static void (*store_limiter)(wasmtime_store_t *, int64_t, int64_t, int64_t, int64_t, int64_t);
static void (*store_delete)(wasmtime_store_t *);
static void (*set_epoch_deadline)(wasmtime_context_t *, uint64_t);
static wasi_config_t *(*wasi_config_new)(void);
static wasmtime_error_t *(*context_set_wasi)(wasmtime_context_t *, wasi_config_t *);
static wasmtime_error_t *(*pre_instantiate)(const wasmtime_instance_pre_t *, wasmtime_context_t *,
                                            wasmtime_instance_t *, wasm_trap_t **);
static bool (*instance_export_get)(wasmtime_context_t *, const wasmtime_instance_t *,
                                   const char *, size_t, wasmtime_extern_t *);
static wasmtime_error_t *(*func_call_unchecked)(wasmtime_context_t *, const wasmtime_func_t *,
                                                wasmtime_val_raw_t *, size_t, wasm_trap_t **);
static uint8_t *(*memory_data)(const wasmtime_context_t *, const wasmtime_memory_t *);
static size_t (*memory_data_size)(const wasmtime_context_t *, const wasmtime_memory_t *);
static bool (*caller_export_get)(wasmtime_caller_t *, const char *, size_t, wasmtime_extern_t *);
static wasmtime_context_t *(*caller_context)(wasmtime_caller_t *);
static bool (*error_exit_status)(const wasmtime_error_t *, int *);
static void (*error_delete)(wasmtime_error_t *);

static uint8_t EXTERN_FUNC, EXTERN_MEMORY;
static bool bound = false;

/* WASI errno values the stdio callbacks return */
enum { WASI_ESUCCESS = 0, WASI_EBADF = 8, WASI_EFAULT = 21, WASI_EFBIG = 22 };

/* -- the request in flight on this thread ---------------------------------------------- */
typedef struct { char *data; size_t len, cap, max; size_t dropped; } buf_t;

typedef struct { const char *name, *value; size_t name_len, value_len; } env_entry_t;

typedef struct {
    /* the environment and argv[0], served by cb_environ_* / cb_args_* */
    env_entry_t *env;
    size_t env_count, env_bytes;
    const char *argv0;
    size_t argv0_len;
    const char *in;
    size_t in_len, in_pos;
    buf_t out, err;
    /* stdout went past its cap: the request fails (its response would be cut) */
    bool out_overflow;
} request_t;

static __thread request_t *current;

/* Append up to the buffer's cap; false (nothing appended) if the data does not fit. */
static bool buf_append(buf_t *b, const uint8_t *data, size_t n) {
    if (n > b->max - b->len) return false;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        if (cap > b->max) cap = b->max;
        char *grown = realloc(b->data, cap);
        if (grown == NULL) return false;
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    return true;
}

/* The caller's memory as (base, size); false if it exports none. */
static bool guest_memory(wasmtime_caller_t *caller, uint8_t **base, size_t *size) {
    wasmtime_extern_t ext;
    if (!caller_export_get(caller, "memory", 6, &ext) || ext.kind != EXTERN_MEMORY) return false;
    wasmtime_context_t *cx = caller_context(caller);
    *base = memory_data(cx, &ext.of.memory);
    *size = memory_data_size(cx, &ext.of.memory);
    return true;
}

static inline bool in_bounds(size_t size, uint32_t ptr, uint32_t len) {
    return (uint64_t)ptr + (uint64_t)len <= (uint64_t)size;
}

/* wasi_snapshot_preview1.fd_write(fd, iovs, iovs_len, nwritten) -> errno, for fds 1 and 2 */
static size_t cb_fd_write(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *a, size_t n) {
    (void)env; (void)n;
    request_t *req = current;
    int32_t fd = a[0].i32;
    uint32_t iovs = (uint32_t)a[1].i32, count = (uint32_t)a[2].i32, nwritten = (uint32_t)a[3].i32;
    uint8_t *base; size_t size;
    if (req == NULL || (fd != 1 && fd != 2)) { a[0].i32 = WASI_EBADF; return 0; }
    if (!guest_memory(caller, &base, &size) || (uint64_t)count * 8 > UINT32_MAX ||
        !in_bounds(size, iovs, count * 8) || !in_bounds(size, nwritten, 4)) {
        a[0].i32 = WASI_EFAULT; return 0;
    }
    uint32_t total = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t p, len;
        memcpy(&p, base + iovs + 8 * i, 4);
        memcpy(&len, base + iovs + 8 * i + 4, 4);
        if (!in_bounds(size, p, len)) { a[0].i32 = WASI_EFAULT; return 0; }
        if (fd == 1) {
            if (!buf_append(&req->out, base + p, len)) {
                req->out_overflow = true;
                a[0].i32 = WASI_EFBIG;
                return 0;
            }
        } else if (!buf_append(&req->err, base + p, len)) {
            req->err.dropped += len;  /* the log keeps its first bytes; the rest is counted */
        }
        total += len;
    }
    memcpy(base + nwritten, &total, 4);
    a[0].i32 = WASI_ESUCCESS;
    return 0;
}

/* wasi_snapshot_preview1.fd_read(fd, iovs, iovs_len, nread) -> errno, for fd 0 (the body) */
static size_t cb_fd_read(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *a, size_t n) {
    (void)env; (void)n;
    request_t *req = current;
    uint32_t iovs = (uint32_t)a[1].i32, count = (uint32_t)a[2].i32, nread = (uint32_t)a[3].i32;
    uint8_t *base; size_t size;
    if (req == NULL || a[0].i32 != 0) { a[0].i32 = WASI_EBADF; return 0; }
    if (!guest_memory(caller, &base, &size) || (uint64_t)count * 8 > UINT32_MAX ||
        !in_bounds(size, iovs, count * 8) || !in_bounds(size, nread, 4)) {
        a[0].i32 = WASI_EFAULT; return 0;
    }
    for (uint32_t i = 0; i < count; i++) {  /* every buffer is checked, as fd_write's are */
        uint32_t p, len;
        memcpy(&p, base + iovs + 8 * i, 4);
        memcpy(&len, base + iovs + 8 * i + 4, 4);
        if (!in_bounds(size, p, len)) { a[0].i32 = WASI_EFAULT; return 0; }
    }
    uint32_t total = 0;
    for (uint32_t i = 0; i < count && req->in_pos < req->in_len; i++) {
        uint32_t p, len;
        memcpy(&p, base + iovs + 8 * i, 4);
        memcpy(&len, base + iovs + 8 * i + 4, 4);
        size_t take = req->in_len - req->in_pos;
        if (take > len) take = len;
        memcpy(base + p, req->in + req->in_pos, take);
        req->in_pos += take;
        total += (uint32_t)take;
    }
    memcpy(base + nread, &total, 4);
    a[0].i32 = WASI_ESUCCESS;
    return 0;
}

/* Write n strings ("name=value" or argv entries), NUL-terminated, into buf and their
 * addresses into ptrs; false if either area lies outside the memory. */
static bool write_strings(uint8_t *base, size_t size, uint32_t ptrs, uint32_t buf,
                          const env_entry_t *entries, size_t n, size_t bytes, bool pairs) {
    if (n * 4 > UINT32_MAX || bytes > UINT32_MAX || !in_bounds(size, ptrs, (uint32_t)(n * 4)) ||
        !in_bounds(size, buf, (uint32_t)bytes))
        return false;
    uint32_t at = buf;
    for (size_t i = 0; i < n; i++) {
        const env_entry_t *e = &entries[i];
        memcpy(base + ptrs + 4 * i, &at, 4);
        memcpy(base + at, e->name, e->name_len);
        at += (uint32_t)e->name_len;
        if (pairs) {
            base[at++] = '=';
            memcpy(base + at, e->value, e->value_len);
            at += (uint32_t)e->value_len;
        }
        base[at++] = 0;
    }
    return true;
}

/* Why environ and args are served here rather than by wasmtime's WASI: wasmtime copies
 * them into the WASI context when the store is built, which for a CGI environment of
 * ~20 variables was a third of the cost of a whole request; here they are read straight
 * from the request, and only when the module asks. */

/* *_sizes_get(count_ptr, bytes_ptr) -> errno: store two u32s where the module asks */
static size_t answer_sizes(wasmtime_caller_t *caller, wasmtime_val_raw_t *a, uint32_t count,
                           uint32_t bytes) {
    uint32_t count_ptr = (uint32_t)a[0].i32, bytes_ptr = (uint32_t)a[1].i32;
    uint8_t *base; size_t size;
    if (!guest_memory(caller, &base, &size) || !in_bounds(size, count_ptr, 4) ||
        !in_bounds(size, bytes_ptr, 4)) {
        a[0].i32 = WASI_EFAULT; return 0;
    }
    memcpy(base + count_ptr, &count, 4);
    memcpy(base + bytes_ptr, &bytes, 4);
    a[0].i32 = WASI_ESUCCESS;
    return 0;
}

/* environ_get / args_get(ptrs_ptr, buf_ptr) -> errno: the strings and their addresses */
static size_t answer_strings(wasmtime_caller_t *caller, wasmtime_val_raw_t *a,
                             const env_entry_t *entries, size_t n, size_t bytes, bool pairs) {
    uint8_t *base; size_t size;
    if (!guest_memory(caller, &base, &size) ||
        (n > 0 && !write_strings(base, size, (uint32_t)a[0].i32, (uint32_t)a[1].i32, entries,
                                 n, bytes, pairs))) {
        a[0].i32 = WASI_EFAULT; return 0;
    }
    a[0].i32 = WASI_ESUCCESS;
    return 0;
}

static size_t cb_environ_sizes_get(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *a, size_t n) {
    (void)env; (void)n;
    request_t *req = current;
    return answer_sizes(caller, a, req ? (uint32_t)req->env_count : 0,
                        req ? (uint32_t)req->env_bytes : 0);
}

static size_t cb_environ_get(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *a, size_t n) {
    (void)env; (void)n;
    request_t *req = current;
    return answer_strings(caller, a, req ? req->env : NULL, req ? req->env_count : 0,
                          req ? req->env_bytes : 0, true);
}

static size_t cb_args_sizes_get(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *a, size_t n) {
    (void)env; (void)n;
    request_t *req = current;
    return answer_sizes(caller, a, req ? 1 : 0, req ? (uint32_t)req->argv0_len + 1 : 0);
}

static size_t cb_args_get(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *a, size_t n) {
    (void)env; (void)n;
    request_t *req = current;
    env_entry_t arg = {req ? req->argv0 : "", NULL, req ? req->argv0_len : 0, 0};
    return answer_strings(caller, a, &arg, req ? 1 : 0, arg.name_len + 1, false);
}

/* -- Python functions --------------------------------------------------------------------- */

static void *sym(void *lib, const char *name) {
    void *p = dlsym(lib, name);
    if (p == NULL) PyErr_Format(PyExc_ImportError, "libwasmtime has no symbol %s", name);
    return p;
}

#define BIND(var, name) do { *(void **)&(var) = sym(lib, name); if ((var) == NULL) return NULL; } while (0)

static PyObject *py_bind(PyObject *self, PyObject *args) {
    const char *path;
    unsigned char func_kind, memory_kind;
    if (!PyArg_ParseTuple(args, "sbb", &path, &func_kind, &memory_kind)) return NULL;
    void *lib = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (lib == NULL) lib = dlopen(path, RTLD_NOW);
    if (lib == NULL) return PyErr_Format(PyExc_ImportError, "cannot open %s: %s", path, dlerror());
    BIND(store_new, "wasmtime_store_new");
    BIND(store_context, "wasmtime_store_context");
    BIND(store_limiter, "wasmtime_store_limiter");
    BIND(store_delete, "wasmtime_store_delete");
    BIND(set_epoch_deadline, "wasmtime_context_set_epoch_deadline");
    BIND(wasi_config_new, "wasi_config_new");
    BIND(context_set_wasi, "wasmtime_context_set_wasi");
    BIND(pre_instantiate, "wasmtime_instance_pre_instantiate");
    BIND(instance_export_get, "wasmtime_instance_export_get");
    BIND(func_call_unchecked, "wasmtime_func_call_unchecked");
    BIND(memory_data, "wasmtime_memory_data");
    BIND(memory_data_size, "wasmtime_memory_data_size");
    BIND(caller_export_get, "wasmtime_caller_export_get");
    BIND(caller_context, "wasmtime_caller_context");
    BIND(error_exit_status, "wasmtime_error_exit_status");
    BIND(error_delete, "wasmtime_error_delete");
    EXTERN_FUNC = func_kind;
    EXTERN_MEMORY = memory_kind;
    bound = true;
    Py_RETURN_NONE;
}

static PyObject *py_layout(PyObject *self, PyObject *unused) {
    return Py_BuildValue("{s:n,s:n,s:n,s:n,s:n}",
                         "wasmtime_instance_t", (Py_ssize_t)sizeof(wasmtime_instance_t),
                         "wasmtime_func_t", (Py_ssize_t)sizeof(wasmtime_func_t),
                         "wasmtime_memory_t", (Py_ssize_t)sizeof(wasmtime_memory_t),
                         "wasmtime_extern_t", (Py_ssize_t)sizeof(wasmtime_extern_t),
                         "wasmtime_val_raw_t", (Py_ssize_t)sizeof(wasmtime_val_raw_t));
}

static PyObject *py_callbacks(PyObject *self, PyObject *unused) {
    return Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:K}",
                         "fd_write", (unsigned long long)(uintptr_t)cb_fd_write,
                         "fd_read", (unsigned long long)(uintptr_t)cb_fd_read,
                         "environ_sizes_get", (unsigned long long)(uintptr_t)cb_environ_sizes_get,
                         "environ_get", (unsigned long long)(uintptr_t)cb_environ_get,
                         "args_sizes_get", (unsigned long long)(uintptr_t)cb_args_sizes_get,
                         "args_get", (unsigned long long)(uintptr_t)cb_args_get);
}

/*
 * run(pre, engine, memory_bytes, ticks, argv0, env, stdin, max_out, max_err, call_start)
 *   -> (stdout, stderr, stderr_dropped, exit_code, error, trap, memory_bytes, out_overflow)
 *
 * pre and engine are addresses (wasmtime_instance_pre_t*, wasm_engine_t*); env is a dict
 * of bytes -> bytes (no NUL inside). error and trap are addresses of a wasmtime_error_t /
 * wasm_trap_t the caller now owns (0 when none); an exit through proc_exit is not an
 * error but its exit_code. memory_bytes is the size of the instance's memory at the end,
 * for telling an out-of-memory trap from others. With call_start false the module is only
 * instantiated (its start section runs), as a check at start-up.
 */
static PyObject *py_run(PyObject *self, PyObject *args) {
    unsigned long long pre_addr, engine_addr, ticks;
    long long memory_bytes;
    const char *argv0;
    PyObject *env;
    Py_buffer in;
    Py_ssize_t max_out, max_err;
    int call_start;
    if (!PyArg_ParseTuple(args, "KKLKyO!y*nnp", &pre_addr, &engine_addr, &memory_bytes, &ticks,
                          &argv0, &PyDict_Type, &env, &in, &max_out, &max_err, &call_start))
        return NULL;
    if (!bound) {
        PyBuffer_Release(&in);
        return PyErr_Format(PyExc_RuntimeError, "edgelet.runtime.wasm._cgi.bind() was not called");
    }
    /* the entries point into env's bytes objects, which the caller keeps alive and
     * nobody else holds: the callbacks read them while the GIL is released */
    Py_ssize_t n_env = PyDict_GET_SIZE(env);
    env_entry_t *entries = PyMem_Malloc(sizeof(env_entry_t) * (size_t)(n_env + 1));
    if (entries == NULL) {
        PyBuffer_Release(&in);
        return PyErr_NoMemory();
    }
    request_t req;
    memset(&req, 0, sizeof req);
    Py_ssize_t pos = 0, i = 0;
    PyObject *key, *value;
    while (PyDict_Next(env, &pos, &key, &value)) {
        if (!PyBytes_Check(key) || !PyBytes_Check(value)) {
            PyMem_Free(entries); PyBuffer_Release(&in);
            return PyErr_Format(PyExc_TypeError, "env must map bytes to bytes");
        }
        env_entry_t *e = &entries[i++];
        e->name = PyBytes_AS_STRING(key);
        e->name_len = (size_t)PyBytes_GET_SIZE(key);
        e->value = PyBytes_AS_STRING(value);
        e->value_len = (size_t)PyBytes_GET_SIZE(value);
        req.env_bytes += e->name_len + e->value_len + 2;
    }
    req.env = entries;
    req.env_count = (size_t)n_env;
    req.argv0 = argv0;
    req.argv0_len = strlen(argv0);
    req.in = in.buf;
    req.in_len = (size_t)in.len;
    req.out.max = (size_t)max_out;
    req.err.max = (size_t)max_err;

    wasmtime_error_t *error = NULL;
    wasm_trap_t *trap = NULL;
    int exit_code = 0;
    size_t mem_size = 0;

    wasmtime_store_t *store = store_new((wasm_engine_t *)(uintptr_t)engine_addr, NULL, NULL);
    wasmtime_context_t *cx = store_context(store);
    store_limiter(store, memory_bytes, 1000000, -1, -1, -1);
    set_epoch_deadline(cx, ticks);
    error = context_set_wasi(cx, wasi_config_new());  /* takes ownership of the config */

    wasmtime_instance_t instance;
    bool instantiated = false;
    request_t *outer = current;
    current = &req;
    Py_BEGIN_ALLOW_THREADS
    if (error == NULL)
        error = pre_instantiate((const wasmtime_instance_pre_t *)(uintptr_t)pre_addr, cx,
                                &instance, &trap);
    instantiated = error == NULL && trap == NULL;
    if (instantiated && call_start) {
        wasmtime_extern_t start;
        if (instance_export_get(cx, &instance, "_start", 6, &start) && start.kind == EXTERN_FUNC) {
            wasmtime_val_raw_t slot[1];
            error = func_call_unchecked(cx, &start.of.func, slot, 0, &trap);
        }
    }
    if (error != NULL && error_exit_status(error, &exit_code)) {
        error_delete(error);
        error = NULL;
    }
    if (instantiated) {
        wasmtime_extern_t mem;
        if (instance_export_get(cx, &instance, "memory", 6, &mem) && mem.kind == EXTERN_MEMORY)
            mem_size = memory_data_size(cx, &mem.of.memory);
    }
    store_delete(store);
    Py_END_ALLOW_THREADS
    current = outer;
    PyBuffer_Release(&in);
    PyMem_Free(entries);

    PyObject *out = PyBytes_FromStringAndSize(req.out.data ? req.out.data : "", (Py_ssize_t)req.out.len);
    PyObject *err = PyBytes_FromStringAndSize(req.err.data ? req.err.data : "", (Py_ssize_t)req.err.len);
    free(req.out.data);
    free(req.err.data);
    if (out == NULL || err == NULL) {
        Py_XDECREF(out); Py_XDECREF(err);
        if (error) error_delete(error);
        return NULL;  /* the trap, if any, leaks: only when Python itself is out of memory */
    }
    return Py_BuildValue("(NNniKKnO)", out, err, (Py_ssize_t)req.err.dropped, exit_code,
                         (unsigned long long)(uintptr_t)error, (unsigned long long)(uintptr_t)trap,
                         (Py_ssize_t)mem_size, req.out_overflow ? Py_True : Py_False);
}

/*
 * fetch(context, alloc, fetch, memory, request, ticks)
 *   -> (response or None, error, trap, fault or None)
 *
 * One request to a live reactor instance: alloc(len) in the guest, the request copied
 * there, fetch(ptr, len), and the (ptr << 32 | len) it returns copied out. context is a
 * wasmtime_context_t*, alloc/fetch/memory the addresses of the instance's
 * wasmtime_func_t / wasmtime_memory_t (kept alive by the caller). error and trap are as
 * for run(); fault names a pointer the module got wrong (the request then fails).
 * Host functions the module calls (edgelet.kv_*) are Python callbacks: they take the GIL
 * back while the call runs here without it.
 */
static PyObject *py_fetch(PyObject *self, PyObject *args) {
    unsigned long long cx_addr, alloc_addr, fetch_addr, mem_addr, ticks;
    Py_buffer request;
    if (!PyArg_ParseTuple(args, "KKKKy*K", &cx_addr, &alloc_addr, &fetch_addr, &mem_addr,
                          &request, &ticks))
        return NULL;
    if (!bound) {
        PyBuffer_Release(&request);
        return PyErr_Format(PyExc_RuntimeError, "edgelet.runtime.wasm._cgi.bind() was not called");
    }
    wasmtime_context_t *cx = (wasmtime_context_t *)(uintptr_t)cx_addr;
    const wasmtime_memory_t *mem = (const wasmtime_memory_t *)(uintptr_t)mem_addr;
    wasmtime_error_t *error = NULL;
    wasm_trap_t *trap = NULL;
    char fault[200] = "";
    char *out = NULL;
    size_t out_len = 0;
    size_t len = (size_t)request.len;
    set_epoch_deadline(cx, ticks);
    Py_BEGIN_ALLOW_THREADS
    wasmtime_val_raw_t slots[2];
    slots[0].i32 = (int32_t)len;
    error = func_call_unchecked(cx, (const wasmtime_func_t *)(uintptr_t)alloc_addr, slots, 1, &trap);
    if (error == NULL && trap == NULL) {
        uint32_t ptr = (uint32_t)slots[0].i32;
        size_t size = memory_data_size(cx, mem);
        if (ptr == 0 || len > UINT32_MAX || !in_bounds(size, ptr, (uint32_t)len)) {
            snprintf(fault, sizeof fault, "alloc(%zu) returned 0x%x, which is not a buffer "
                     "inside the module's %zu-byte memory", len, ptr, size);
        } else {
            memcpy(memory_data(cx, mem) + ptr, request.buf, len);
            slots[0].i32 = (int32_t)ptr;
            slots[1].i32 = (int32_t)len;
            error = func_call_unchecked(cx, (const wasmtime_func_t *)(uintptr_t)fetch_addr,
                                        slots, 2, &trap);
            if (error == NULL && trap == NULL) {
                uint64_t packed = (uint64_t)slots[0].i64;
                uint32_t out_ptr = (uint32_t)(packed >> 32), n = (uint32_t)packed;
                size = memory_data_size(cx, mem);
                if (!in_bounds(size, out_ptr, n)) {
                    snprintf(fault, sizeof fault, "fetch returned a response at 0x%x (%u bytes) "
                             "outside the module's %zu-byte memory; return (ptr << 32) | len",
                             out_ptr, n, size);
                } else {
                    out = malloc(n ? n : 1);
                    if (out != NULL) {
                        memcpy(out, memory_data(cx, mem) + out_ptr, n);
                        out_len = n;
                    } else {
                        snprintf(fault, sizeof fault, "a %u-byte response did not fit in memory", n);
                    }
                }
            }
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&request);
    PyObject *response;
    if (out != NULL) {
        response = PyBytes_FromStringAndSize(out, (Py_ssize_t)out_len);
        free(out);
        if (response == NULL) {
            if (error) error_delete(error);
            return NULL;
        }
    } else {
        response = Py_NewRef(Py_None);
    }
    PyObject *fault_obj = fault[0] ? PyUnicode_FromString(fault) : Py_NewRef(Py_None);
    if (fault_obj == NULL) {
        Py_DECREF(response);
        return NULL;
    }
    return Py_BuildValue("(NKKN)", response, (unsigned long long)(uintptr_t)error,
                         (unsigned long long)(uintptr_t)trap, fault_obj);
}

/* -- the CGI response, fast path ---------------------------------------------------- */

static bool is_token_char(unsigned char c) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_space(unsigned char c) {  /* bytes.strip() and the \s of a bytes regex */
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\x0b' || c == '\x0c';
}

static bool same_lower(const char *p, size_t n, const char *lower) {
    size_t m = strlen(lower);
    if (n != m) return false;
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)p[i]) != lower[i]) return false;
    return true;
}

/*
 * parse_response(out) -> [status, [[name, value], ...], body] or None
 *
 * edgelet.runtime.wasm.cgi.parse_response for well-formed output, in C; None for anything else
 * (nothing written, no blank line, a bad line or status, a control character), which the
 * Python parser then explains. The Python function is the contract; this only has to
 * agree with it where it returns.
 */
static PyObject *py_parse_response(PyObject *self, PyObject *arg) {
    if (!PyBytes_Check(arg)) return PyErr_Format(PyExc_TypeError, "parse_response takes bytes");
    const char *out = PyBytes_AS_STRING(arg);
    size_t len = (size_t)PyBytes_GET_SIZE(arg);
    size_t head_len, body_at;
    if (len == 0) Py_RETURN_NONE;
    if (len >= 2 && out[0] == '\r' && out[1] == '\n') {
        head_len = 0; body_at = 2;
    } else if (out[0] == '\n') {
        head_len = 0; body_at = 1;
    } else {
        const char *crlf = memmem(out, len, "\r\n\r\n", 4), *lf = memmem(out, len, "\n\n", 2);
        if (crlf == NULL && lf == NULL) Py_RETURN_NONE;
        if (lf == NULL || (crlf != NULL && crlf < lf)) {
            head_len = (size_t)(crlf - out); body_at = head_len + 4;
        } else {
            head_len = (size_t)(lf - out); body_at = head_len + 2;
        }
    }
    PyObject *headers = PyList_New(0);
    if (headers == NULL) return NULL;
    long status = 0;
    bool location = false;
    size_t at = 0;
    while (head_len > 0 && at <= head_len) {
        const char *line = out + at;
        const char *nl = memchr(line, '\n', head_len - at);
        size_t n = nl ? (size_t)(nl - line) : head_len - at;
        at += n + 1;
        while (n > 0 && line[n - 1] == '\r') n--;
        const char *colon = memchr(line, ':', n);
        if (colon == NULL || colon == line) goto fallback;
        size_t name_len = (size_t)(colon - line);
        for (size_t i = 0; i < name_len; i++)
            if (!is_token_char((unsigned char)line[i])) goto fallback;
        const char *v = colon + 1, *v_end = line + n;
        while (v < v_end && is_space((unsigned char)*v)) v++;
        while (v_end > v && is_space((unsigned char)v_end[-1])) v_end--;
        size_t value_len = (size_t)(v_end - v);
        if (same_lower(line, name_len, "status")) {
            if (status != 0 || value_len < 3) goto fallback;  /* a second Status: Python decides */
            for (int i = 0; i < 3; i++)
                if (v[i] < '0' || v[i] > '9') goto fallback;
            if (value_len > 3 && !is_space((unsigned char)v[3])) goto fallback;
            status = (v[0] - '0') * 100 + (v[1] - '0') * 10 + (v[2] - '0');
            if (status < 200 || status > 599) goto fallback;
            continue;
        }
        if (memchr(v, '\r', value_len) || memchr(v, '\0', value_len)) goto fallback;
        if (same_lower(line, name_len, "location")) location = true;
        PyObject *pair = Py_BuildValue("[NN]", PyUnicode_DecodeLatin1(line, (Py_ssize_t)name_len, NULL),
                                       PyUnicode_DecodeLatin1(v, (Py_ssize_t)value_len, NULL));
        if (pair == NULL || PyList_Append(headers, pair) < 0) {
            Py_XDECREF(pair); Py_DECREF(headers);
            return NULL;
        }
        Py_DECREF(pair);
        if (nl == NULL) break;
    }
    if (status == 0) status = location ? 302 : 200;
    return Py_BuildValue("[lNN]", status, headers,
                         PyBytes_FromStringAndSize(out + body_at, (Py_ssize_t)(len - body_at)));
fallback:
    Py_DECREF(headers);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"bind", py_bind, METH_VARARGS,
     "bind(libwasmtime_path, EXTERN_FUNC, EXTERN_MEMORY): look up the C-API functions."},
    {"layout", py_layout, METH_NOARGS, "sizeof of the wasmtime structs as compiled here."},
    {"callbacks", py_callbacks, METH_NOARGS,
     "{WASI function name: address of its C callback here}, for a linker."},
    {"run", py_run, METH_VARARGS, "Run one CGI request of a command module (see the source)."},
    {"fetch", py_fetch, METH_VARARGS, "One request to a live reactor instance (see the source)."},
    {"parse_response", py_parse_response, METH_O,
     "edgelet.runtime.wasm.cgi.parse_response for well-formed output; None for the rest."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "edgelet.runtime.wasm._cgi",
    "One CGI request of a Wasm command module, in C (see edgelet.runtime.wasm.native).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__cgi(void) { return PyModule_Create(&module); }
