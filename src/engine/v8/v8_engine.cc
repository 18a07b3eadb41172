/*
 * The V8 backend of the engine interface, over libnode's public V8 C++ API.
 *
 * One isolate and one context per engine; the context stays entered for the
 * engine's life so calls need no Context::Scope. Modules are compiled with
 * WasmModuleObject::Compile and instantiated through the JS global
 * WebAssembly.Instance; imports are JS functions whose callback converts
 * values by the import's declared signature and calls the host function.
 *
 * PW_IMPORT_FAST imports are also given a V8 fast API function (a plain C
 * function that V8's wasm import wrapper calls directly, with no callback
 * info, handles or exceptions: a third of the cost). A C function cannot
 * carry per-import data and V8 10.2 passes wasm neither the template's
 * data nor options, so the C functions come from a process-wide pool of
 * slots, one function per (parameter count, slot), generated below; the
 * slot's cell names the import that owns it. With no free slot the import
 * is a plain one. V8 needs --turbo-fast-api-calls, set at start.
 */

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <memory>
#include <new>
#include <utility>

#include <libplatform/libplatform.h>
#include <v8.h>
#include <v8-fast-api-calls.h>

#include <pw/pw_engine.h>
#include <pw/pw_wasm.h>

/* ASan owns SIGSEGV; without the trap handler V8 emits bounds checks. */
#if defined(__SANITIZE_ADDRESS__)
#define PW__V8_TRAP_HANDLER 0
#else
#define PW__V8_TRAP_HANDLER 1
#endif

#define PW__V8_CLAIMED (1ULL << 63)
#define PW__V8_PUMP_EVERY 1024
#define PW__V8_FAST_ARGS PW_IMPORT_FAST_ARGS
#define PW__V8_FAST_SLOTS 64        /* per parameter count, per process */

typedef struct {
    pw_host_fn_t fn;
    void *fn_data;
    pw_einstance_t *inst;
    pw_engine_t *engine;            /* inst's */
    uint8_t nparams;
    uint8_t nresults;
    int16_t fast_slot;              /* -1, or its fast function's slot */
    char kinds[PW_SIG_MAX];         /* parameters, then results */
} pw__v8_import_t;

struct pw_engine_s {
    v8::Isolate *isolate;
    v8::ArrayBuffer::Allocator *allocator;
    v8::Global<v8::Context> context;
    v8::Global<v8::Function> instance_ctor;
    /*
     * Open from init to destroy, so that each call's HandleScope finds a
     * handle block ready instead of allocating and freeing one.
     */
    v8::HandleScope *outer_scope;
    alignas(v8::HandleScope) unsigned char outer_scope_buf[
        sizeof(v8::HandleScope)];
    int depth;                      /* nested calls into the guest */
    const char *host_trap;          /* raised by a host function ... */
    int host_trap_depth;            /* ... under the call at this depth */
    int host_trap_term;             /* ... by TerminateExecution (fast) */
    /*
     * A call from the host (depth 0) has no TryCatch: an exception leaving
     * it is uncaught, and V8 hands it to pw__v8_on_message (the isolate's
     * message listener) before the call returns. That writes it to
     * outer_trap (NULL: not wanted) and sets outer_caught. A terminate
     * reaches no listener.
     */
    pw_trap_t *outer_trap;
    int outer_catching;
    int outer_caught;
    unsigned calls;
    /*
     * Bumped whenever guest code may have run (a host function entered, a
     * call returned): cached memory views older than this are stale. One
     * counter for all instances, as linked instances run each other's code.
     */
    uint64_t epoch;
    /* the function of each fast slot in this isolate, made on first use */
    v8::Global<v8::FunctionTemplate> fast_tmpl[PW__V8_FAST_ARGS + 1]
                                              [PW__V8_FAST_SLOTS];
};

struct pw_emodule_s {
    pw_engine_t *engine;
    v8::Global<v8::WasmModuleObject> module;
    pw_wasm_info_t *info;
    int refs;                       /* the handle and each instance */
};

struct pw_efunc_s {
    pw_efunc_t *next;
    v8::Global<v8::Function> fn;
    char *name;
    uint8_t nparams;
    uint8_t nresults;
    uint8_t i32_only;       /* i32 parameters, no result or one i32 */
    char kinds[PW_SIG_MAX];
};

struct pw_einstance_s {
    pw_engine_t *engine;
    pw_emodule_t *mod;
    v8::Global<v8::Object> exports;
    v8::Global<v8::WasmMemoryObject> memory;
    uint8_t *mem_base;
    size_t mem_size;
    uint64_t mem_epoch;             /* engine epoch of mem_base/mem_size */
    pw__v8_import_t *imports;
    size_t nimports;
    pw_efunc_t *funcs;
    int depth;
    /*
     * Interrupts: `active` holds the running call's generation (0 when
     * idle). interrupt() claims it by CAS (setting PW__V8_CLAIMED) before
     * terminating, and sets term_done after; the call's end swaps active
     * to 0 and, if it was claimed, waits for term_done and cancels the
     * termination. So a terminate never outlives the call it was meant for.
     */
    std::atomic<uint64_t> next_gen;
    std::atomic<uint64_t> active;
    std::atomic<int> term_done;
    /*
     * Whether call_generation was asked (a watchdog arms before each call):
     * until then no interrupt can name a call, and calls skip the above.
     */
    std::atomic<int> watched;
};

/*
 * Without threads (pw_engine_conf_t.threads 0): what V8 gives its worker
 * threads (tier-up compilation of hot functions, the odd GC or cleanup job)
 * waits here, and pw__v8_pump runs it on the thread that makes the calls,
 * between calls. The proxy's process keeps the one thread it had, so libc
 * stays in its single-threaded mode (no cancellation points around each
 * system call, no locked malloc). The foreground side (task runners, time,
 * tracing) is the single-threaded DefaultPlatform's, which PumpMessageLoop
 * drives as before. V8 runs with --single-threaded-gc so that no collection
 * waits on a helper that would never come.
 */
extern "C" {
unsigned long pw__v8_inline_tasks;      /* worker tasks run so (tests) */
unsigned long pw__v8_inline_slices;     /* job slices cut short (tests) */
}

/* the pump's time for worker tasks: a job then yields, to the next pump */
#define PW__V8_INLINE_BUDGET_NS (2 * 1000 * 1000)

static uint64_t
pw__v8_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

class pw__v8_inline_platform;
static pw__v8_inline_platform *pw__v8_inline;   /* or NULL: V8 threads */

/*
 * A job (V8's unit of parallel work: a wasm module's tier-up compilation)
 * on the inline platform. Its JobTask runs in slices, one queued task at a
 * time: a slice runs until the job has no work left or the pump's time is
 * up (ShouldYield), then queues the next slice if work remains. So one
 * pump never holds the proxy's thread much longer than the budget (plus
 * the unit under way: one function's compilation). Join runs the job to
 * its end on the caller, as V8 expects. One Run at a time per job: the
 * JobTask sees one worker (task id 0), also when engines live on several
 * threads.
 */
struct pw__v8_job_state {
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    std::unique_ptr<v8::JobTask> task;
    std::atomic<bool> canceled{false};
    bool queued = false;            /* a slice waits in the queue */
    bool running = false;           /* a Run is under way */

    ~pw__v8_job_state() { pthread_mutex_destroy(&mu); }
};

typedef std::shared_ptr<pw__v8_job_state> pw__v8_job_ref;

static void pw__v8_job_post(const pw__v8_job_ref &s);

class pw__v8_job_delegate final : public v8::JobDelegate {
public:
    pw__v8_job_delegate(const pw__v8_job_ref &s, uint64_t deadline,
        bool joining)
        : s_(s), deadline_(deadline), joining_(joining)
    {
    }

    bool ShouldYield() override
    {
        if (s_->canceled.load(std::memory_order_relaxed)) {
            return true;
        }
        if (deadline_ != 0 && pw__v8_now_ns() >= deadline_) {
            yielded_ = true;
            return true;
        }
        return false;
    }

    void NotifyConcurrencyIncrease() override { pw__v8_job_post(s_); }

    uint8_t GetTaskId() override { return 0; }

    bool IsJoiningThread() const override { return joining_; }

    bool yielded() const { return yielded_; }

private:
    pw__v8_job_ref s_;
    uint64_t deadline_;             /* 0: none */
    bool joining_;
    bool yielded_ = false;
};

/* Whether a Run of the job is under way (on another thread). */
static bool
pw__v8_job_busy(const pw__v8_job_ref &s)
{
    bool busy;

    pthread_mutex_lock(&s->mu);
    busy = s->running;
    pthread_mutex_unlock(&s->mu);
    return busy;
}

/*
 * One Run of the job unless it is canceled, has nothing to do or runs
 * elsewhere; returns whether work remains (a canceled job has none; one
 * running elsewhere may have).
 */
static bool
pw__v8_job_run(const pw__v8_job_ref &s, uint64_t deadline, bool joining)
{
    bool more;

    pthread_mutex_lock(&s->mu);
    more = !s->canceled.load() && s->task != nullptr
           && (s->running || s->task->GetMaxConcurrency(0) > 0);
    if (!more || s->running) {
        pthread_mutex_unlock(&s->mu);
        return more;
    }
    s->running = true;
    pthread_mutex_unlock(&s->mu);

    pw__v8_job_delegate d(s, deadline, joining);
    s->task->Run(&d);
    if (d.yielded()) {
        pw__v8_inline_slices++;
    }

    pthread_mutex_lock(&s->mu);
    s->running = false;
    more = !s->canceled.load() && s->task->GetMaxConcurrency(0) > 0;
    pthread_mutex_unlock(&s->mu);
    return more;
}

/* the queued slice: a Run within the pump's time, then the next slice */
class pw__v8_job_slice final : public v8::Task {
public:
    pw__v8_job_slice(const pw__v8_job_ref &s,
        const std::atomic<uint64_t> *deadline)
        : s_(s), deadline_(deadline)
    {
    }

    void Run() override
    {
        pthread_mutex_lock(&s_->mu);
        s_->queued = false;
        pthread_mutex_unlock(&s_->mu);
        if (pw__v8_job_run(s_, deadline_->load(std::memory_order_relaxed),
                           false))
        {
            pw__v8_job_post(s_);
        }
    }

private:
    pw__v8_job_ref s_;
    /* the pump's, read when the slice runs */
    const std::atomic<uint64_t> *deadline_;
};

class pw__v8_job_handle final : public v8::JobHandle {
public:
    explicit pw__v8_job_handle(const pw__v8_job_ref &s) : s_(s) {}

    void NotifyConcurrencyIncrease() override { pw__v8_job_post(s_); }

    void Join() override
    {
        /* to the end, here; a Run on another thread is waited for */
        while (pw__v8_job_run(s_, 0, true)) {
            if (pw__v8_job_busy(s_)) {
                sched_yield();
            }
        }
        done();
    }

    void Cancel() override
    {
        s_->canceled.store(true);
        done();
    }

    void CancelAndDetach() override
    {
        s_->canceled.store(true);
        valid_ = false;
    }

    bool IsActive() override
    {
        bool active;

        pthread_mutex_lock(&s_->mu);
        active = s_->running
                 || (!s_->canceled.load() && s_->task != nullptr
                     && s_->task->GetMaxConcurrency(0) > 0);
        pthread_mutex_unlock(&s_->mu);
        return active;
    }

    bool IsValid() override { return valid_; }

private:
    /* no Run left under way; the JobTask goes with the last reference */
    void done()
    {
        while (pw__v8_job_busy(s_)) {
            sched_yield();
        }
        s_->canceled.store(true);
        valid_ = false;
    }

    pw__v8_job_ref s_;
    bool valid_ = true;
};

class pw__v8_inline_platform final : public v8::Platform {
public:
    explicit pw__v8_inline_platform(std::unique_ptr<v8::Platform> inner)
        : inner_(std::move(inner))
    {
    }

    v8::Platform *inner() { return inner_.get(); }

    v8::PageAllocator *GetPageAllocator() override
    {
        return inner_->GetPageAllocator();
    }

    /* one "worker": jobs are sized for one helper besides the caller */
    int NumberOfWorkerThreads() override { return 1; }

    std::shared_ptr<v8::TaskRunner>
    GetForegroundTaskRunner(v8::Isolate *isolate) override
    {
        return inner_->GetForegroundTaskRunner(isolate);
    }

    void CallOnWorkerThread(std::unique_ptr<v8::Task> task) override
    {
        push(std::move(task), 0);
    }

    void CallDelayedOnWorkerThread(std::unique_ptr<v8::Task> task,
        double delay_in_seconds) override
    {
        push(std::move(task),
             MonotonicallyIncreasingTime() + delay_in_seconds);
    }

    std::unique_ptr<v8::JobHandle> PostJob(v8::TaskPriority priority,
        std::unique_ptr<v8::JobTask> job_task) override
    {
        pw__v8_job_ref s = std::make_shared<pw__v8_job_state>();

        (void) priority;
        s->task = std::move(job_task);
        pw__v8_job_post(s);
        return std::make_unique<pw__v8_job_handle>(s);
    }

    /* queues a slice of a job, unless one waits already */
    void post_slice(const pw__v8_job_ref &s)
    {
        pthread_mutex_lock(&s->mu);
        if (s->queued || s->canceled.load()) {
            pthread_mutex_unlock(&s->mu);
            return;
        }
        s->queued = true;
        pthread_mutex_unlock(&s->mu);
        push(std::make_unique<pw__v8_job_slice>(s, &deadline_), 0);
    }

    double MonotonicallyIncreasingTime() override
    {
        return inner_->MonotonicallyIncreasingTime();
    }

    double CurrentClockTimeMillis() override
    {
        return inner_->CurrentClockTimeMillis();
    }

    v8::TracingController *GetTracingController() override
    {
        return inner_->GetTracingController();
    }

    /*
     * Runs tasks that are due, oldest first, for about budget_ns (a job's
     * slice yields when the time is up); a task a slice queues waits for
     * the next call. Returns how many ran.
     */
    size_t run(uint64_t budget_ns)
    {
        size_t n = 0, max;
        uint64_t deadline;

        deadline = pw__v8_now_ns() + budget_ns;
        deadline_.store(deadline, std::memory_order_relaxed);
        max = pending_.load(std::memory_order_relaxed);
        while (n < max && pw__v8_now_ns() < deadline) {
            std::unique_ptr<v8::Task> task = pop();
            if (task == nullptr) {
                break;
            }
            task->Run();
            n++;
        }
        return n;
    }

    bool idle() const { return pending_.load(std::memory_order_relaxed) == 0; }

private:
    struct item {
        double due;                 /* 0: now */
        std::unique_ptr<v8::Task> task;
    };

    void push(std::unique_ptr<v8::Task> task, double due)
    {
        pthread_mutex_lock(&mu_);
        queue_.push_back(item{due, std::move(task)});
        pending_.fetch_add(1, std::memory_order_relaxed);
        pthread_mutex_unlock(&mu_);
    }

    std::unique_ptr<v8::Task> pop()
    {
        std::unique_ptr<v8::Task> task;
        double now = 0;

        pthread_mutex_lock(&mu_);
        for (auto it = queue_.begin(); it != queue_.end(); ++it) {
            if (it->due != 0) {
                if (now == 0) {
                    now = MonotonicallyIncreasingTime();
                }
                if (it->due > now) {
                    continue;
                }
            }
            task = std::move(it->task);
            queue_.erase(it);
            pending_.fetch_sub(1, std::memory_order_relaxed);
            break;
        }
        pthread_mutex_unlock(&mu_);
        return task;
    }

    std::unique_ptr<v8::Platform> inner_;
    pthread_mutex_t mu_ = PTHREAD_MUTEX_INITIALIZER;
    std::deque<item> queue_;
    std::atomic<size_t> pending_{0};
    std::atomic<uint64_t> deadline_{0};     /* of the run under way */
};

static void
pw__v8_job_post(const pw__v8_job_ref &s)
{
    if (pw__v8_inline != NULL) {
        pw__v8_inline->post_slice(s);
    }
}

/* Process-wide V8 state: plain pointers, no static destructors. */
static pthread_mutex_t pw__v8_lock = PTHREAD_MUTEX_INITIALIZER;
static v8::Platform *pw__v8_platform;   /* the one V8 was given */
static v8::Platform *pw__v8_default;    /* its DefaultPlatform (pumps) */
static pid_t pw__v8_pid;
static thread_local pw_engine_t *pw__v8_thread_engine;

/*
 * Fast slots: cell [n][s] names the import (of any engine in the process)
 * that owns the fast C function for n parameters in slot s; taken and
 * released under pw__v8_lock, read by the owner's thread only.
 */
static pw__v8_import_t *pw__v8_fast_slots[PW__V8_FAST_ARGS + 1]
                                         [PW__V8_FAST_SLOTS];
static v8::CFunction pw__v8_fast_cfns[PW__V8_FAST_ARGS + 1]
                                     [PW__V8_FAST_SLOTS];

/* Calls of host functions by the fast path and by the plain one (tests). */
extern "C" {
unsigned long pw__v8_fast_calls;
unsigned long pw__v8_host_calls;
}

/*
 * A Global used as a Local, without a new handle: both are one pointer to
 * the slot that holds the object (Node's PersistentToLocal::Strong does the
 * same). Valid while the Global is.
 */
template <class T>
static inline v8::Local<T>
pw__v8_borrow(const v8::Global<T> &g)
{
    static_assert(sizeof(v8::Global<T>) == sizeof(v8::Local<T>)
                  && sizeof(v8::Local<T>) == sizeof(void *),
                  "Global and Local differ in layout");
    return *reinterpret_cast<const v8::Local<T> *>(&g);
}

static int
pw__v8_sig_kinds(const char *sig, char *kinds, uint8_t *nparams,
    uint8_t *nresults)
{
    const char *p;
    size_t n;
    int seen_colon;

    n = 0;
    seen_colon = 0;
    *nparams = 0;
    for (p = sig; *p; p++) {
        if (*p == ':' && !seen_colon) {
            seen_colon = 1;
            *nparams = (uint8_t) n;
            continue;
        }
        if (*p != PW_I32 && *p != PW_I64 && *p != PW_F32 && *p != PW_F64) {
            return PW_EINVAL;
        }
        if (n >= PW_SIG_MAX - 1) {
            return PW_EINVAL;
        }
        kinds[n++] = *p;
    }
    if (!seen_colon) {
        return PW_EINVAL;
    }
    *nresults = (uint8_t) (n - *nparams);
    return PW_OK;
}

static v8::Local<v8::Value>
pw__v8_to_js(v8::Isolate *isolate, const pw_val_t *v)
{
    switch (v->kind) {
    case PW_I64:
        return v8::BigInt::New(isolate, v->of.i64);
    case PW_F32:
        return v8::Number::New(isolate, (double) v->of.f32);
    case PW_F64:
        return v8::Number::New(isolate, v->of.f64);
    default:
        return v8::Integer::New(isolate, v->of.i32);
    }
}

static inline int
pw__v8_from_js(v8::Local<v8::Value> v, char kind, pw_val_t *out)
{
    out->kind = (pw_valkind_t) kind;

    switch (kind) {
    case PW_I32:
        if (v8::internal::SmiValuesAre32Bits()) {
            /* as the arguments (pw__v8_call): a Smi is read in its slot */
            v8::internal::Address a =
                *reinterpret_cast<v8::internal::Address *>(*v);

            if ((a & v8::internal::kSmiTagMask) == v8::internal::kSmiTag) {
                out->of.i32 = v8::internal::Internals::SmiValue(a);
                return PW_OK;
            }
        }
        if (v->IsInt32()) {
            out->of.i32 = v.As<v8::Int32>()->Value();
            return PW_OK;
        }
        break;
    case PW_I64:
        if (v->IsBigInt()) {
            out->of.i64 = v.As<v8::BigInt>()->Int64Value();
            return PW_OK;
        }
        break;
    case PW_F32:
        if (v->IsNumber()) {
            out->of.f32 = (float) v.As<v8::Number>()->Value();
            return PW_OK;
        }
        break;
    case PW_F64:
        if (v->IsNumber()) {
            out->of.f64 = v.As<v8::Number>()->Value();
            return PW_OK;
        }
        break;
    }
    return PW_EINVAL;
}

static void
pw__v8_copy_str(v8::Isolate *isolate, v8::Local<v8::Value> v, char *buf,
    size_t len)
{
    if (len == 0) {
        return;
    }
    buf[0] = '\0';
    if (v.IsEmpty()) {
        return;
    }
    v8::String::Utf8Value s(isolate, v);
    if (*s != NULL) {
        snprintf(buf, len, "%s", *s);
    }
}

/* The exception's text, "RuntimeError: unreachable" and the like. */
static void
pw__v8_exception_msg(v8::Isolate *isolate, v8::Local<v8::Context> ctx,
    v8::Local<v8::Value> exc, char *buf, size_t len)
{
    v8::Local<v8::String> s;

    if (exc.IsEmpty() || !exc->ToString(ctx).ToLocal(&s)) {
        snprintf(buf, len, "unknown exception");
        return;
    }
    pw__v8_copy_str(isolate, s, buf, len);
}

/* One frame per line from the error's "stack" ("    at f (...)" lines). */
static void
pw__v8_backtrace(v8::Isolate *isolate, v8::Local<v8::Context> ctx,
    v8::Local<v8::Value> exc, char *buf, size_t len)
{
    v8::Local<v8::Value> stack;
    const char *p, *nl, *line;
    size_t out, n;

    buf[0] = '\0';
    if (exc.IsEmpty() || !exc->IsObject()) {
        return;
    }
    if (!exc.As<v8::Object>()->Get(ctx,
            v8::String::NewFromUtf8Literal(isolate, "stack"))
         .ToLocal(&stack)
        || !stack->IsString())
    {
        return;
    }

    v8::String::Utf8Value s(isolate, stack);
    if (*s == NULL) {
        return;
    }
    out = 0;
    for (p = *s; *p; p = nl + (*nl ? 1 : 0)) {
        nl = strchr(p, '\n');
        if (nl == NULL) {
            nl = p + strlen(p);
        }
        line = p;
        while (line < nl && *line == ' ') {
            line++;
        }
        if (nl - line < 3 || memcmp(line, "at ", 3) != 0) {
            continue;
        }
        line += 3;
        n = nl - line;
        if (out + n + 2 > len) {
            break;
        }
        memcpy(buf + out, line, n);
        out += n;
        buf[out++] = '\n';
        buf[out] = '\0';
    }
}

/*
 * A T (v8::HandleScope, v8::TryCatch) made in place, or none. V8 wants
 * both on the stack, and a call from the host needs neither: its handles
 * go to the engine's outer scope, its exception to the message listener
 * (pw__v8_on_message).
 */
template <typename T>
class pw__v8_maybe {
public:
    pw__v8_maybe(v8::Isolate *isolate, bool open) : open_(open)
    {
        if (open) {
            ::new (buf_) T(isolate);
        }
    }

    ~pw__v8_maybe()
    {
        if (open_) {
            get()->~T();
        }
    }

    T *get()
    {
        return reinterpret_cast<T *>(buf_);
    }

    pw__v8_maybe(const pw__v8_maybe &) = delete;
    pw__v8_maybe &operator=(const pw__v8_maybe &) = delete;

private:
    bool open_;
    alignas(T) unsigned char buf_[sizeof(T)];
};

/*
 * Frees the handles outer calls left in the outer scope: closes it and
 * opens it again, with its first handle so that it keeps owning a block.
 * Only with no other scope of the isolate open.
 */
static void
pw__v8_outer_renew(pw_engine_t *engine)
{
    engine->outer_scope->~HandleScope();
    engine->outer_scope = ::new (engine->outer_scope_buf)
        v8::HandleScope(engine->isolate);
    (void) v8::Integer::New(engine->isolate, 0);
}

/* Whether no worker task waits on the inline platform (tests only). */
extern "C" int
pw__v8_inline_idle(void)
{
    return pw__v8_inline == NULL || pw__v8_inline->idle();
}

/* Handles of the engine's isolate, in all its scopes (tests only). */
extern "C" int
pw__v8_handles(pw_engine_t *engine)
{
    return v8::HandleScope::NumberOfHandles(engine->isolate);
}

static void
pw__v8_pump(pw_engine_t *engine)
{
    while (v8::platform::PumpMessageLoop(pw__v8_default, engine->isolate,
               v8::platform::MessageLoopBehavior::kDoNotWait))
    {
        /* run what V8 posted (GC, compilation finalisation) */
    }

    /*
     * Worker tasks, on this thread, with no call of this engine on the
     * stack (pumps run only then). A call of another engine may be below,
     * as it may be below a pump's foreground tasks: V8 holds nothing across
     * a host call, and worker tasks are made to run beside running code.
     */
    if (pw__v8_inline != NULL && !pw__v8_inline->idle()) {
        pw__v8_inline_tasks += pw__v8_inline->run(PW__V8_INLINE_BUDGET_NS);
    }
}

/* ---- fast imports ------------------------------------------------------ */

/*
 * A fast API call cannot throw: a failure terminates execution instead,
 * which stops the guest at its next check, and the call reports the host's
 * trap message.
 */
static void __attribute__((noinline))
pw__v8_fast_trap(pw_engine_t *engine, const char *trap_msg)
{
    if (engine->host_trap == NULL) {
        engine->host_trap = trap_msg ? trap_msg : "host function failed";
        engine->host_trap_depth = engine->depth;
        engine->host_trap_term = 1;
        engine->isolate->TerminateExecution();
    }
}

static inline pw_val_t
pw__v8_i32(int32_t i)
{
    pw_val_t v;

    v.kind = PW_I32;
    v.of.i32 = i;
    return v;
}

template <size_t I> using pw__v8_i32_t = int32_t;

/*
 * The fast C function of slot S with sizeof...(I) i32 parameters: no
 * handles, no exceptions, no JS. Everything is inline here, one function
 * per slot: this is the whole cost of a fast call on our side.
 */
template <size_t S, size_t... I>
static int32_t
pw__v8_fast_fn(v8::Local<v8::Object> receiver, pw__v8_i32_t<I>... a)
{
    pw__v8_import_t *imp;
    pw_val_t args[] = { pw__v8_i32(a)..., pw__v8_i32(0) }, res;
    const char *trap_msg;

    imp = pw__v8_fast_slots[sizeof...(I)][S];
    if (imp == NULL) {
        return 0;                   /* a released slot: nothing calls it */
    }
    imp->engine->epoch++;
    pw__v8_fast_calls++;
    res = pw__v8_i32(0);
    trap_msg = NULL;
    if (imp->fn(imp->fn_data, imp->inst, args, &res, &trap_msg) != PW_OK) {
        pw__v8_fast_trap(imp->engine, trap_msg);
        return 0;
    }
    return res.of.i32;
}

template <size_t S, size_t... I>
static void
pw__v8_fast_fill_one(std::index_sequence<I...>)
{
    pw__v8_fast_cfns[sizeof...(I)][S] =
        v8::CFunction::Make(&pw__v8_fast_fn<S, I...>);
}

template <size_t N, size_t... S>
static void
pw__v8_fast_fill_n(std::index_sequence<S...>)
{
    (pw__v8_fast_fill_one<S>(std::make_index_sequence<N>()), ...);
}

template <size_t... N>
static void
pw__v8_fast_fill(std::index_sequence<N...>)
{
    (pw__v8_fast_fill_n<N>(std::make_index_sequence<PW__V8_FAST_SLOTS>()),
     ...);
}

/* A free slot for an import of n parameters, or -1. */
static int
pw__v8_fast_take(pw__v8_import_t *b, unsigned n)
{
    int s;

    pthread_mutex_lock(&pw__v8_lock);
    for (s = 0; s < PW__V8_FAST_SLOTS; s++) {
        if (pw__v8_fast_slots[n][s] == NULL) {
            pw__v8_fast_slots[n][s] = b;
            break;
        }
    }
    pthread_mutex_unlock(&pw__v8_lock);
    return s < PW__V8_FAST_SLOTS ? s : -1;
}

static void
pw__v8_fast_release(pw__v8_import_t *b)
{
    if (b->fast_slot < 0) {
        return;
    }
    pthread_mutex_lock(&pw__v8_lock);
    pw__v8_fast_slots[b->nparams][b->fast_slot] = NULL;
    pthread_mutex_unlock(&pw__v8_lock);
    b->fast_slot = -1;
}

/* ---- engine ------------------------------------------------------------ */

static int
pw__v8_start(const pw_engine_conf_t *conf, char *err, size_t errlen)
{
    sigset_t all, old;
    int threads;

    if (pw__v8_platform != NULL) {
        if (pw__v8_pid != getpid()) {
            snprintf(err, errlen, "V8 was started before fork; start it in "
                     "the process that uses it");
            return PW_EENGINE;
        }
        return PW_OK;
    }

    threads = conf != NULL ? conf->threads : 0;
    /* wasm calls PW_IMPORT_FAST imports as fast API functions */
    v8::V8::SetFlagsFromString("--turbo-fast-api-calls");
    if (threads <= 0) {
        v8::V8::SetFlagsFromString("--single-threaded-gc");
    }
    pw__v8_fast_fill(std::make_index_sequence<PW__V8_FAST_ARGS + 1>());
    if (conf != NULL && conf->flags != NULL) {
        v8::V8::SetFlagsFromString(conf->flags);
    }

    /* V8's worker threads inherit this mask: signals stay on our thread. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);

    if (threads > 0) {
        pw__v8_platform = v8::platform::NewDefaultPlatform(threads,
            v8::platform::IdleTaskSupport::kDisabled,
            v8::platform::InProcessStackDumping::kDisabled).release();
        pw__v8_default = pw__v8_platform;
    } else {
        pw__v8_inline = new (std::nothrow) pw__v8_inline_platform(
            v8::platform::NewSingleThreadedDefaultPlatform(
                v8::platform::IdleTaskSupport::kDisabled,
                v8::platform::InProcessStackDumping::kDisabled));
        if (pw__v8_inline != NULL) {
            pw__v8_default = pw__v8_inline->inner();
        }
        pw__v8_platform = pw__v8_inline;
    }
    if (pw__v8_platform != NULL) {
        v8::V8::InitializePlatform(pw__v8_platform);
#if PW__V8_TRAP_HANDLER
        /* On failure V8 falls back on explicit bounds checks. */
        (void) v8::V8::EnableWebAssemblyTrapHandler(true);
#endif
        v8::V8::Initialize();
    }

    pthread_sigmask(SIG_SETMASK, &old, NULL);

    if (pw__v8_platform == NULL) {
        snprintf(err, errlen, "cannot create the V8 platform");
        return PW_EENGINE;
    }
    pw__v8_pid = getpid();
    return PW_OK;
}

static void pw__v8_destroy(pw_engine_t *engine);

/*
 * The isolate's message listener: an exception that no TryCatch caught,
 * which V8 reports before the call it left returns. Outer calls have no
 * TryCatch (pw__v8_enter): their traps come through here, and nothing
 * else does while one runs (nested calls catch their own).
 */
static void
pw__v8_on_message(v8::Local<v8::Message> msg, v8::Local<v8::Value> exc)
{
    pw_engine_t *engine = pw__v8_thread_engine;
    v8::Isolate *isolate = msg->GetIsolate();
    v8::Local<v8::Context> ctx;
    pw_trap_t *trap;

    if (engine == NULL || engine->isolate != isolate
        || !engine->outer_catching || engine->outer_caught)
    {
        return;
    }
    engine->outer_caught = 1;
    trap = engine->outer_trap;
    if (trap == NULL) {
        return;
    }
    v8::HandleScope hs(isolate);
    ctx = pw__v8_borrow(engine->context);
    pw__v8_exception_msg(isolate, ctx, exc, trap->message,
                         sizeof(trap->message));
    pw__v8_backtrace(isolate, ctx, exc, trap->backtrace,
                     sizeof(trap->backtrace));
}

static int
pw__v8_init(const pw_engine_conf_t *conf, pw_engine_t **out, char *err,
    size_t errlen)
{
    v8::Isolate::CreateParams params;
    v8::Local<v8::Context> ctx;
    v8::Local<v8::Value> wa, ctor;
    pw_engine_t *engine;
    sigset_t all, old;
    int rc;

    pthread_mutex_lock(&pw__v8_lock);
    rc = pw__v8_start(conf, err, errlen);
    pthread_mutex_unlock(&pw__v8_lock);
    if (rc != PW_OK) {
        return rc;
    }

    if (pw__v8_thread_engine != NULL) {
        snprintf(err, errlen, "this thread already has a V8 engine");
        return PW_EENGINE;
    }

    engine = new (std::nothrow) pw_engine_t();
    if (engine == NULL) {
        snprintf(err, errlen, "out of memory");
        return PW_ENOMEM;
    }
    engine->epoch = 1;
    engine->allocator = v8::ArrayBuffer::Allocator::NewDefaultAllocator();
    if (engine->allocator == NULL) {
        delete engine;
        snprintf(err, errlen, "out of memory");
        return PW_ENOMEM;
    }
    params.array_buffer_allocator = engine->allocator;

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    engine->isolate = v8::Isolate::New(params);
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    if (engine->isolate == NULL) {
        delete engine->allocator;
        delete engine;
        snprintf(err, errlen, "cannot create a V8 isolate");
        return PW_EENGINE;
    }
    engine->isolate->Enter();
    pw__v8_thread_engine = engine;
    engine->isolate->AddMessageListenerWithErrorLevel(
        pw__v8_on_message, v8::Isolate::kMessageError);
    /* no microtask checkpoint after every call: wasm queues none */
    engine->isolate->SetMicrotasksPolicy(v8::MicrotasksPolicy::kExplicit);
    /* global placement new: HandleScope forbids heap allocation */
    engine->outer_scope = ::new (engine->outer_scope_buf)
        v8::HandleScope(engine->isolate);
    /* a first handle, so that the scope owns a block */
    (void) v8::Integer::New(engine->isolate, 0);

    {
        v8::HandleScope hs(engine->isolate);

        ctx = v8::Context::New(engine->isolate);
        if (ctx.IsEmpty()) {
            goto failed;
        }
        /* Stays entered until destroy: entered contexts are GC roots. */
        ctx->Enter();
        engine->context.Reset(engine->isolate, ctx);

        if (!ctx->Global()->Get(ctx, v8::String::NewFromUtf8Literal(
                 engine->isolate, "WebAssembly")).ToLocal(&wa)
            || !wa->IsObject()
            || !wa.As<v8::Object>()->Get(ctx, v8::String::NewFromUtf8Literal(
                 engine->isolate, "Instance")).ToLocal(&ctor)
            || !ctor->IsFunction())
        {
            goto failed;
        }
        engine->instance_ctor.Reset(engine->isolate, ctor.As<v8::Function>());
    }

    *out = engine;
    return PW_OK;

failed:
    snprintf(err, errlen, "cannot set up a V8 context with WebAssembly");
    pw__v8_destroy(engine);
    return PW_EENGINE;
}

/*
 * Disposes of the isolate. V8 itself and its platform stay initialised
 * until the process exits: V8 cannot be initialised again after
 * V8::Dispose, and a later init in this process must work.
 */
static void
pw__v8_destroy(pw_engine_t *engine)
{
    v8::Isolate *isolate;

    if (engine == NULL) {
        return;
    }
    isolate = engine->isolate;

    if (!engine->context.IsEmpty()) {
        v8::HandleScope hs(isolate);
        engine->context.Get(isolate)->Exit();
    }
    engine->context.Reset();
    engine->instance_ctor.Reset();
    for (auto &row : engine->fast_tmpl) {
        for (auto &t : row) {
            t.Reset();
        }
    }
    if (engine->outer_scope != NULL) {
        engine->outer_scope->~HandleScope();
    }

    pw__v8_pump(engine);
    isolate->Exit();
    isolate->Dispose();
    v8::platform::NotifyIsolateShutdown(pw__v8_default, isolate);
    if (pw__v8_thread_engine == engine) {
        pw__v8_thread_engine = NULL;
    }
    delete engine->allocator;
    delete engine;
}

/* ---- modules ----------------------------------------------------------- */

static int
pw__v8_compile(pw_engine_t *engine, const uint8_t *bytes, size_t len,
    pw_emodule_t **out, char *err, size_t errlen)
{
    v8::Isolate *isolate;
    v8::Local<v8::WasmModuleObject> m;
    pw_emodule_t *mod;
    int rc;

    isolate = engine->isolate;
    v8::HandleScope hs(isolate);
    v8::TryCatch tc(isolate);

    if (!v8::WasmModuleObject::Compile(isolate,
            v8::MemorySpan<const uint8_t>(bytes, len)).ToLocal(&m))
    {
        if (tc.HasCaught()) {
            pw__v8_exception_msg(isolate, engine->context.Get(isolate),
                                 tc.Exception(),
                                 err, errlen);
        } else {
            snprintf(err, errlen, "cannot compile the module");
        }
        pw__v8_pump(engine);
        return PW_EMALFORMED;
    }

    mod = new (std::nothrow) pw_emodule_t();
    if (mod == NULL) {
        snprintf(err, errlen, "out of memory");
        return PW_ENOMEM;
    }
    /* signatures of imports and exports: V8's API does not give them */
    rc = pw_wasm_parse(bytes, len, &mod->info, err, errlen);
    if (rc != PW_OK) {
        delete mod;
        return rc;
    }
    mod->engine = engine;
    mod->module.Reset(isolate, m);
    mod->refs = 1;
    pw__v8_pump(engine);

    *out = mod;
    return PW_OK;
}

static void
pw__v8_module_unref(pw_emodule_t *mod)
{
    if (mod == NULL || --mod->refs > 0) {
        return;
    }
    mod->module.Reset();
    pw_wasm_info_free(mod->info);
    delete mod;
}

static void
pw__v8_module_free(pw_emodule_t *mod)
{
    pw__v8_module_unref(mod);
}

/* ---- instances --------------------------------------------------------- */

/* Every wasm->host call lands here; keep it lean. */
static void
pw__v8_host_call_imp(const v8::FunctionCallbackInfo<v8::Value> &info,
    pw__v8_import_t *imp)
{
    pw_einstance_t *inst;
    pw_engine_t *engine;
    v8::Isolate *isolate;
    pw_val_t args[PW_SIG_MAX], results[PW_SIG_MAX];
    const char *trap_msg;
    unsigned i;
    int rc;

    inst = imp->inst;
    engine = inst->engine;
    isolate = info.GetIsolate();
    engine->epoch++;
    pw__v8_host_calls++;

    for (i = 0; i < imp->nparams; i++) {
        if (pw__v8_from_js(info[i], imp->kinds[i], &args[i]) != PW_OK) {
            isolate->ThrowException(v8::Exception::TypeError(
                v8::String::NewFromUtf8Literal(isolate,
                    "host function: bad argument type")));
            return;
        }
    }
    for (i = 0; i < imp->nresults; i++) {
        results[i].kind = (pw_valkind_t) imp->kinds[imp->nparams + i];
        results[i].of.i64 = 0;
    }

    trap_msg = NULL;
    rc = imp->fn(imp->fn_data, inst, args, results, &trap_msg);

    if (isolate->IsExecutionTerminating()) {
        return;     /* interrupted meanwhile (in a nested call) */
    }

    if (rc != PW_OK) {
        v8::Local<v8::String> msg;

        if (trap_msg == NULL) {
            trap_msg = "host function failed";
        }
        engine->host_trap = trap_msg;
        engine->host_trap_depth = engine->depth;
        if (!v8::String::NewFromUtf8(isolate, trap_msg).ToLocal(&msg)) {
            msg = v8::String::NewFromUtf8Literal(isolate, "host trap");
        }
        isolate->ThrowException(v8::Exception::Error(msg));
        return;
    }

    if (imp->nresults == 1) {
        switch (results[0].kind) {
        case PW_I32:
            info.GetReturnValue().Set(results[0].of.i32);
            break;
        case PW_I64:
            info.GetReturnValue().Set(v8::BigInt::New(isolate,
                                                      results[0].of.i64));
            break;
        case PW_F32:
            info.GetReturnValue().Set((double) results[0].of.f32);
            break;
        case PW_F64:
            info.GetReturnValue().Set(results[0].of.f64);
            break;
        }

    } else if (imp->nresults > 1) {
        v8::Local<v8::Value> vals[PW_SIG_MAX];

        for (i = 0; i < imp->nresults; i++) {
            vals[i] = pw__v8_to_js(isolate, &results[i]);
        }
        info.GetReturnValue().Set(v8::Array::New(isolate, vals,
                                                 imp->nresults));
    }
}

static void
pw__v8_host_call(const v8::FunctionCallbackInfo<v8::Value> &info)
{
    pw__v8_host_call_imp(info, static_cast<pw__v8_import_t *>(
        info.Data().As<v8::External>()->Value()));
}

/* The slow callback of a fast slot's function: data is the slot's cell. */
static void
pw__v8_host_call_slot(const v8::FunctionCallbackInfo<v8::Value> &info)
{
    pw__v8_import_t *imp;

    imp = *static_cast<pw__v8_import_t **>(
        info.Data().As<v8::External>()->Value());
    if (imp == NULL) {
        info.GetIsolate()->ThrowException(v8::Exception::Error(
            v8::String::NewFromUtf8Literal(info.GetIsolate(),
                                           "host function released")));
        return;
    }
    pw__v8_host_call_imp(info, imp);
}

/*
 * The JS function of an import: a fast slot's (same function for every
 * import that holds the slot in turn) or one of its own.
 */
static int
pw__v8_import_fn(pw_einstance_t *inst, pw__v8_import_t *b,
    const pw_import_t *imp, v8::Local<v8::Context> ctx,
    v8::Local<v8::Function> *f)
{
    v8::Global<v8::FunctionTemplate> *g;
    v8::Local<v8::FunctionTemplate> t;
    v8::Isolate *isolate;
    unsigned i, n;
    int s;

    isolate = inst->engine->isolate;
    b->fast_slot = -1;
    n = b->nparams;
    s = -1;
    if ((imp->flags & PW_IMPORT_FAST) && n <= PW__V8_FAST_ARGS
        && b->nresults == 1 && b->kinds[n] == PW_I32)
    {
        for (i = 0; i < n && b->kinds[i] == PW_I32; i++) {
            /* all i32 */
        }
        if (i == n) {
            s = pw__v8_fast_take(b, n);
        }
    }
    if (s < 0) {
        return v8::Function::New(ctx, pw__v8_host_call,
                   v8::External::New(isolate, b), b->nparams,
                   v8::ConstructorBehavior::kThrow).ToLocal(f)
               ? PW_OK : PW_EENGINE;
    }
    b->fast_slot = (int16_t) s;

    g = &inst->engine->fast_tmpl[n][s];
    if (g->IsEmpty()) {
        t = v8::FunctionTemplate::New(isolate, pw__v8_host_call_slot,
                v8::External::New(isolate, &pw__v8_fast_slots[n][s]),
                v8::Local<v8::Signature>(), (int) n,
                v8::ConstructorBehavior::kThrow,
                v8::SideEffectType::kHasSideEffect,
                &pw__v8_fast_cfns[n][s]);
        g->Reset(isolate, t);
    }
    return g->Get(isolate)->GetFunction(ctx).ToLocal(f) ? PW_OK
                                                        : PW_EENGINE;
}

static const pw_import_t *
pw__v8_find_import(const pw_import_t *imports, size_t nimports,
    const pw_wasm_import_t *decl)
{
    size_t i;

    for (i = 0; i < nimports; i++) {
        if (imports[i].module != NULL && imports[i].name != NULL
            && strcmp(imports[i].module, decl->module) == 0
            && strcmp(imports[i].name, decl->name) == 0)
        {
            return &imports[i];
        }
    }
    return NULL;
}

static void pw__v8_instance_free(pw_einstance_t *inst);

/* The namespace object of decl's module in the imports object, made once. */
static int
pw__v8_import_ns(v8::Isolate *isolate, v8::Local<v8::Context> ctx,
    v8::Local<v8::Object> obj, const pw_wasm_import_t *decl,
    v8::Local<v8::Object> *ns, v8::Local<v8::String> *fname)
{
    v8::Local<v8::String> mname;
    v8::Local<v8::Value> v;

    if (!v8::String::NewFromUtf8(isolate, decl->module).ToLocal(&mname)
        || !v8::String::NewFromUtf8(isolate, decl->name).ToLocal(fname)
        || !obj->Get(ctx, mname).ToLocal(&v))
    {
        return PW_EENGINE;
    }
    if (!v->IsObject()) {
        v = v8::Object::New(isolate);
        if (obj->Set(ctx, mname, v).IsNothing()) {
            return PW_EENGINE;
        }
    }
    *ns = v.As<v8::Object>();
    return PW_OK;
}

/*
 * An import linked to another instance's export: the export object itself
 * goes into the imports object, and V8 links wasm to wasm (functions) or
 * shares the table, memory or global.
 */
static int
pw__v8_link_export(pw_einstance_t *inst, const pw_wasm_import_t *decl,
    const pw_import_link_t *link, v8::Local<v8::Value> *out, char *err,
    size_t errlen)
{
    const pw_wasm_export_t *exp;
    const pw_wasm_info_t *info;
    v8::Isolate *isolate;
    v8::Local<v8::Context> ctx;
    v8::Local<v8::String> key;
    size_t i;

    if (link->from == NULL || link->name == NULL
        || link->from->engine != inst->engine)
    {
        snprintf(err, errlen, "import %s.%s: bad link to another instance",
                 decl->module, decl->name);
        return PW_ELINK;
    }
    /* pw_wasm_find_export finds functions only */
    info = link->from->mod->info;
    exp = NULL;
    for (i = 0; i < info->nexports; i++) {
        if (info->exports[i].kind == decl->kind
            && strcmp(info->exports[i].name, link->name) == 0)
        {
            exp = &info->exports[i];
            break;
        }
    }
    if (exp == NULL) {
        snprintf(err, errlen, "import %s.%s: the other instance has no "
                 "export %s of that kind", decl->module, decl->name,
                 link->name);
        return PW_ELINK;
    }
    if (decl->kind == PW_EXTERN_FUNC && strcmp(exp->sig, decl->sig) != 0) {
        snprintf(err, errlen, "import %s.%s: export %s has signature "
                 "\"%s\", module declares \"%s\"", decl->module, decl->name,
                 link->name, exp->sig, decl->sig);
        return PW_ELINK;
    }
    isolate = inst->engine->isolate;
    ctx = inst->engine->context.Get(isolate);
    if (!v8::String::NewFromUtf8(isolate, link->name).ToLocal(&key)
        || !link->from->exports.Get(isolate)->Get(ctx, key).ToLocal(out)
        || (*out)->IsUndefined())
    {
        snprintf(err, errlen, "import %s.%s: cannot read export %s",
                 decl->module, decl->name, link->name);
        return PW_ELINK;
    }
    return PW_OK;
}

/* Binds each declared import; fills the JS imports object. */
static int
pw__v8_link(pw_einstance_t *inst, const pw_import_t *imports,
    size_t nimports, v8::Local<v8::Context> ctx, v8::Local<v8::Object> obj,
    char *err, size_t errlen)
{
    const pw_wasm_info_t *info;
    const pw_wasm_import_t *decl;
    const pw_import_t *imp;
    pw__v8_import_t *b;
    v8::Isolate *isolate;
    v8::Local<v8::String> fname;
    v8::Local<v8::Object> ns;
    v8::Local<v8::Value> v;
    v8::Local<v8::Function> f;
    size_t i;
    int rc;

    info = inst->mod->info;
    isolate = inst->engine->isolate;

    inst->imports = (pw__v8_import_t *) calloc(info->nimports + 1,
        sizeof(pw__v8_import_t));
    if (inst->imports == NULL) {
        snprintf(err, errlen, "out of memory");
        return PW_ENOMEM;
    }

    for (i = 0; i < info->nimports; i++) {
        decl = &info->imports[i];

        imp = pw__v8_find_import(imports, nimports, decl);
        if (imp != NULL && imp->fn == NULL && imp->fn_data != NULL) {
            rc = pw__v8_link_export(inst, decl,
                     (const pw_import_link_t *) imp->fn_data, &v, err,
                     errlen);
            if (rc != PW_OK) {
                return rc;
            }
            if (pw__v8_import_ns(isolate, ctx, obj, decl, &ns, &fname)
                != PW_OK
                || ns->Set(ctx, fname, v).IsNothing())
            {
                goto failed;
            }
            continue;
        }
        if (decl->kind != PW_EXTERN_FUNC) {
            snprintf(err, errlen, "import %s.%s: only function imports are "
                     "supported", decl->module, decl->name);
            return PW_ELINK;
        }
        if (imp == NULL || imp->fn == NULL) {
            snprintf(err, errlen, "missing import %s.%s", decl->module,
                     decl->name);
            return PW_ELINK;
        }
        if (imp->sig != NULL && strcmp(imp->sig, decl->sig) != 0) {
            snprintf(err, errlen, "import %s.%s: host signature \"%s\", "
                     "module declares \"%s\"", decl->module, decl->name,
                     imp->sig, decl->sig);
            return PW_ELINK;
        }

        b = &inst->imports[inst->nimports++];
        b->fast_slot = -1;
        b->fn = imp->fn;
        b->fn_data = imp->fn_data;
        b->inst = inst;
        b->engine = inst->engine;
        if (pw__v8_sig_kinds(decl->sig, b->kinds, &b->nparams, &b->nresults)
            != PW_OK)
        {
            snprintf(err, errlen, "import %s.%s: unsupported signature "
                     "\"%s\"", decl->module, decl->name, decl->sig);
            return PW_ELINK;
        }

        if (pw__v8_import_ns(isolate, ctx, obj, decl, &ns, &fname) != PW_OK
            || pw__v8_import_fn(inst, b, imp, ctx, &f) != PW_OK
            || ns->Set(ctx, fname, f).IsNothing())
        {
            goto failed;
        }
    }
    return PW_OK;

failed:
    snprintf(err, errlen, "cannot build the imports object");
    return PW_EENGINE;
}

static int
pw__v8_instantiate(pw_emodule_t *mod, const pw_import_t *imports,
    size_t nimports, pw_einstance_t **out, char *err, size_t errlen)
{
    pw_engine_t *engine;
    pw_einstance_t *inst;
    v8::Isolate *isolate;
    v8::Local<v8::Context> ctx;
    v8::Local<v8::Object> obj, instance;
    v8::Local<v8::Value> argv[2], exports, mem;
    int rc, trapped;

    engine = mod->engine;
    isolate = engine->isolate;
    v8::HandleScope hs(isolate);
    ctx = engine->context.Get(isolate);

    inst = new (std::nothrow) pw_einstance_t();
    if (inst == NULL) {
        snprintf(err, errlen, "out of memory");
        return PW_ENOMEM;
    }
    inst->engine = engine;
    inst->mod = mod;
    mod->refs++;
    inst->next_gen.store(1);

    obj = v8::Object::New(isolate);
    rc = pw__v8_link(inst, imports, nimports, ctx, obj, err, errlen);
    if (rc != PW_OK) {
        goto failed;
    }

    argv[0] = mod->module.Get(isolate);
    argv[1] = obj;

    {
        v8::TryCatch tc(isolate);

        engine->depth++;
        /* a start-section trap may come back as an object and a throw */
        trapped = !engine->instance_ctor.Get(isolate)
                       ->NewInstance(ctx, 2, argv).ToLocal(&instance)
                  || tc.HasCaught();
        if (engine->host_trap != NULL
            && engine->host_trap_depth == engine->depth)
        {
            snprintf(err, errlen, "%s", engine->host_trap);
            engine->host_trap = NULL;
            if (engine->host_trap_term) {
                engine->host_trap_term = 0;
                isolate->CancelTerminateExecution();
            }
            rc = PW_ETRAP;
        } else if (trapped) {
            if (tc.HasTerminated()) {
                snprintf(err, errlen, "terminated");
                rc = PW_EINTERRUPTED;
            } else {
                pw__v8_exception_msg(isolate, ctx, tc.Exception(), err,
                                     errlen);
                rc = strncmp(err, "LinkError", 9) == 0 ? PW_ELINK
                     : strncmp(err, "RuntimeError", 12) == 0 ? PW_ETRAP
                     : PW_EENGINE;
            }
        }
        engine->depth--;
        engine->epoch++;
        if (rc == PW_EINTERRUPTED && engine->depth == 0) {
            isolate->CancelTerminateExecution();
        }
    }
    if (rc != PW_OK) {
        goto failed;
    }

    if (!instance->Get(ctx, v8::String::NewFromUtf8Literal(isolate,
            "exports")).ToLocal(&exports)
        || !exports->IsObject())
    {
        snprintf(err, errlen, "instance has no exports object");
        rc = PW_EENGINE;
        goto failed;
    }
    inst->exports.Reset(isolate, exports.As<v8::Object>());

    if (exports.As<v8::Object>()->Get(ctx, v8::String::NewFromUtf8Literal(
            isolate, "memory")).ToLocal(&mem)
        && mem->IsWasmMemoryObject())
    {
        inst->memory.Reset(isolate, mem.As<v8::WasmMemoryObject>());
    }

    *out = inst;
    return PW_OK;

failed:
    pw__v8_instance_free(inst);
    return rc;
}

static void
pw__v8_instance_free(pw_einstance_t *inst)
{
    pw_efunc_t *f, *next;
    size_t i;

    if (inst == NULL) {
        return;
    }
    for (f = inst->funcs; f != NULL; f = next) {
        next = f->next;
        f->fn.Reset();
        free(f->name);
        delete f;
    }
    inst->exports.Reset();
    inst->memory.Reset();
    /* The JS import functions die with the instance; nothing calls them. */
    for (i = 0; i < inst->nimports; i++) {
        pw__v8_fast_release(&inst->imports[i]);
    }
    free(inst->imports);
    pw__v8_module_unref(inst->mod);
    delete inst;
}

static int
pw__v8_lookup(pw_einstance_t *inst, const char *name, pw_efunc_t **fn,
    char *sig)
{
    const pw_wasm_export_t *exp;
    v8::Isolate *isolate;
    v8::Local<v8::Context> ctx;
    v8::Local<v8::String> key;
    v8::Local<v8::Value> v;
    pw_efunc_t *f;

    exp = pw_wasm_find_export(inst->mod->info, name);
    if (exp == NULL) {
        return PW_ENOTFOUND;
    }
    if (sig != NULL) {
        memcpy(sig, exp->sig, PW_SIG_MAX);
    }

    for (f = inst->funcs; f != NULL; f = f->next) {
        if (strcmp(f->name, name) == 0) {
            *fn = f;
            return PW_OK;
        }
    }

    isolate = inst->engine->isolate;
    v8::HandleScope hs(isolate);
    ctx = inst->engine->context.Get(isolate);

    if (!v8::String::NewFromUtf8(isolate, name).ToLocal(&key)
        || !inst->exports.Get(isolate)->Get(ctx, key).ToLocal(&v)
        || !v->IsFunction())
    {
        return PW_ENOTFOUND;
    }

    f = new (std::nothrow) pw_efunc_t();
    if (f == NULL) {
        return PW_ENOMEM;
    }
    f->name = strdup(name);
    if (f->name == NULL) {
        delete f;
        return PW_ENOMEM;
    }
    if (pw__v8_sig_kinds(exp->sig, f->kinds, &f->nparams, &f->nresults)
        != PW_OK)
    {
        /* callable by no one: call() refuses every argument list */
        f->nparams = PW_SIG_MAX;
        f->nresults = 0;
    }
    f->i32_only = f->nresults <= 1;
    for (size_t i = 0; i < (size_t) f->nparams + f->nresults; i++) {
        f->i32_only &= f->kinds[i] == PW_I32;
    }
    f->fn.Reset(isolate, v.As<v8::Function>());
    f->next = inst->funcs;
    inst->funcs = f;

    *fn = f;
    return PW_OK;
}

/*
 * The body of both calls (pw__v8_call, pw__v8_call_i32), inlined in each:
 * arguments come as pw_val_t in args or, when i32, as i32 in args32, the
 * results go to results[nresults] or, when i32, to *res32 (NULL: none).
 */
static inline __attribute__((always_inline)) int
pw__v8_enter(pw_einstance_t *inst, pw_efunc_t *fn, int i32,
    const pw_val_t *args, const uint32_t *args32, size_t nargs,
    pw_val_t *results, size_t nresults, uint32_t *res32, pw_trap_t *trap)
{
    pw_engine_t *engine;
    v8::Isolate *isolate;
    v8::Local<v8::Context> ctx;
    v8::Local<v8::Value> *argv, ret, v;
    /* raw storage: a Local array would be zeroed on every call */
    alignas(v8::Local<v8::Value>) unsigned char
        argv_buf[PW_SIG_MAX * sizeof(v8::Local<v8::Value>)];
    v8::internal::Address smis[PW_SIG_MAX];
    pw_val_t r32;
    const char *host_trap;
    uint64_t gen, prev;
    size_t i;
    int rc, outer, top, watched, claimed, ok, host_term, handles, term;

    /*
     * An i32 is a Smi when Smis have 32 bits: a Local is a pointer to a
     * slot holding the tagged value, and a Smi needs no handle (the GC
     * never moves or scans it), so its slot can be ours, on the stack.
     * Made while the kinds are checked; other values get handles below.
     */
    argv = reinterpret_cast<v8::Local<v8::Value> *>(argv_buf);
    handles = 0;
    if (i32) {
        /* call_i32 checked the signature */
        for (i = 0; i < nargs; i++) {
            if (v8::internal::SmiValuesAre32Bits()) {
                smis[i] = v8::internal::IntToSmi((int32_t) args32[i]);
                reinterpret_cast<v8::internal::Address **>(argv_buf)[i] =
                    &smis[i];
            } else {
                handles = 1;
            }
        }
    } else {
        for (i = 0; i < nargs; i++) {
            if ((char) args[i].kind != fn->kinds[i]) {
                return PW_EINVAL;
            }
            if (v8::internal::SmiValuesAre32Bits()
                && args[i].kind == PW_I32)
            {
                smis[i] = v8::internal::IntToSmi(args[i].of.i32);
                reinterpret_cast<v8::internal::Address **>(argv_buf)[i] =
                    &smis[i];
            } else {
                handles = 1;
            }
        }
    }

    engine = inst->engine;
    isolate = engine->isolate;
    outer = inst->depth == 0;

    if (engine->depth == 0 && ++engine->calls % PW__V8_PUMP_EVERY == 0) {
        pw__v8_pump(engine);
        pw__v8_outer_renew(engine);
    }

    /*
     * A call from the host (engine depth 0) opens no HandleScope: its few
     * handles (the result; an i64's BigInt) stay in the engine's outer
     * scope, renewed just above every PW__V8_PUMP_EVERY such calls. At
     * depth 0 no other scope of this isolate is open (guest code runs only
     * inside calls and instantiate, which count in depth). A nested call,
     * from a host function, opens one, as its caller may hold handles.
     */
    pw__v8_maybe<v8::HandleScope> hs(isolate, engine->depth != 0);
    ctx = pw__v8_borrow(engine->context);

    for (i = 0; handles && i < nargs; i++) {
        if (i32) {
            new (&argv[i]) v8::Local<v8::Value>(
                v8::Integer::New(isolate, (int32_t) args32[i]));
        } else if (!v8::internal::SmiValuesAre32Bits()
                   || args[i].kind != PW_I32)
        {
            new (&argv[i]) v8::Local<v8::Value>(pw__v8_to_js(isolate,
                                                             &args[i]));
        }
    }

    /*
     * Until someone asked for a generation (call_generation, before the
     * calls it may interrupt), nothing can interrupt the instance: its
     * calls skip the handshake and its locked exchange.
     */
    gen = 0;
    watched = outer && inst->watched.load(std::memory_order_relaxed);
    if (watched) {
        gen = inst->next_gen.load(std::memory_order_relaxed);
        inst->active.store(gen, std::memory_order_release);
    }
    top = engine->depth == 0;
    inst->depth++;
    engine->depth++;

    /*
     * A nested call catches its exception itself; an outer one leaves it
     * to the message listener (pw__v8_on_message), which costs nothing
     * when nothing is thrown (a TryCatch costs a register and an
     * unregister each call).
     */
    pw__v8_maybe<v8::TryCatch> tc(isolate, !top);
    if (top) {
        engine->outer_trap = trap;
        engine->outer_caught = 0;
        engine->outer_catching = 1;
    }
    ok = pw__v8_borrow(fn->fn)->Call(ctx, v8::Undefined(isolate),
                                   (int) nargs, argv).ToLocal(&ret);
    if (top) {
        engine->outer_catching = 0;
        engine->outer_trap = NULL;
    }

    host_trap = NULL;
    host_term = 0;
    if (engine->host_trap != NULL && engine->host_trap_depth == engine->depth)
    {
        /* ours, even if the guest caught the exception and went on */
        host_trap = engine->host_trap;
        engine->host_trap = NULL;
        host_term = engine->host_trap_term;
        engine->host_trap_term = 0;
    }
    engine->depth--;
    inst->depth--;
    engine->epoch++;

    claimed = 0;
    if (watched) {
        prev = inst->active.exchange(0);
        inst->next_gen.store(gen + 1, std::memory_order_release);
        if (prev & PW__V8_CLAIMED) {
            while (!inst->term_done.load()) {
                sched_yield();
            }
            inst->term_done.store(0);
            claimed = 1;
        }
    }

    rc = PW_OK;
    if (!ok) {
        /*
         * A terminate throws nothing a listener sees. An exception's
         * message and frames: the listener wrote them for an outer call,
         * here from the TryCatch for a nested one.
         */
        term = top ? !engine->outer_caught : tc.get()->HasTerminated();
        if (trap != NULL && !top && !term) {
            pw__v8_exception_msg(isolate, ctx, tc.get()->Exception(),
                                 trap->message, sizeof(trap->message));
            pw__v8_backtrace(isolate, ctx, tc.get()->Exception(),
                             trap->backtrace, sizeof(trap->backtrace));
        }
        if (host_trap != NULL) {
            /* the host's, even when it terminated the guest to stop it */
            rc = PW_ETRAP;
            if (trap != NULL) {
                snprintf(trap->message, sizeof(trap->message), "%s",
                         host_trap);
                if (term) {
                    trap->backtrace[0] = '\0';
                }
            }
        } else if (term) {
            rc = PW_EINTERRUPTED;
            if (trap != NULL) {
                snprintf(trap->message, sizeof(trap->message),
                         "interrupted");
                trap->backtrace[0] = '\0';
            }
        } else {
            rc = PW_ETRAP;
        }

    } else if (host_trap != NULL) {
        rc = PW_ETRAP;
        if (trap != NULL) {
            snprintf(trap->message, sizeof(trap->message), "%s", host_trap);
            trap->backtrace[0] = '\0';
        }

    } else if (i32) {
        if (res32 != NULL) {
            if (pw__v8_from_js(ret, PW_I32, &r32) != PW_OK) {
                rc = PW_EENGINE;
            } else {
                *res32 = (uint32_t) r32.of.i32;
            }
        }

    } else if (nresults == 1) {
        if (pw__v8_from_js(ret, fn->kinds[fn->nparams], &results[0])
            != PW_OK)
        {
            rc = PW_EENGINE;
        }

    } else if (nresults > 1) {
        if (!ret->IsArray()) {
            rc = PW_EENGINE;
        }
        for (i = 0; rc == PW_OK && i < nresults; i++) {
            if (!ret.As<v8::Array>()->Get(ctx, (uint32_t) i).ToLocal(&v)
                || pw__v8_from_js(v, fn->kinds[fn->nparams + i], &results[i])
                   != PW_OK)
            {
                rc = PW_EENGINE;
            }
        }
    }

    /*
     * A terminate we asked for is cancelled here, whether it stopped the
     * call or landed after it; one that is not ours (an outer call's) keeps
     * unwinding, unless nothing is left to unwind.
     */
    if (claimed || host_term
        || (rc == PW_EINTERRUPTED && engine->depth == 0))
    {
        isolate->CancelTerminateExecution();
    }

    return rc;
}

static int
pw__v8_call(pw_einstance_t *inst, pw_efunc_t *fn, const pw_val_t *args,
    size_t nargs, pw_val_t *results, size_t nresults, pw_trap_t *trap)
{
    if (nargs != fn->nparams || nresults != fn->nresults) {
        return PW_EINVAL;
    }
    return pw__v8_enter(inst, fn, 0, args, NULL, nargs, results, nresults,
                        NULL, trap);
}

/*
 * All-i32 functions (every Proxy-Wasm callback, the batch's): the
 * arguments become Smis straight from args, with no pw_val_t in between
 * (here or in the caller) and no per-argument kind check. Every
 * callback's entry: in .text.hot with the rest of the request's path.
 */
__attribute__((hot)) static int
pw__v8_call_i32(pw_einstance_t *inst, pw_efunc_t *fn, const uint32_t *args,
    size_t nargs, uint32_t *result, pw_trap_t *trap)
{
    if (!fn->i32_only || nargs != fn->nparams
        || (result != NULL) != (fn->nresults != 0))
    {
        return PW_EINVAL;
    }
    return pw__v8_enter(inst, fn, 1, NULL, args, nargs, NULL, 0, result,
                        trap);
}

static int
pw__v8_memory(pw_einstance_t *inst, uint8_t **base, size_t *size)
{
    if (inst->mem_epoch != inst->engine->epoch) {
        if (inst->memory.IsEmpty()) {
            return PW_ENOTFOUND;
        }
        v8::HandleScope hs(inst->engine->isolate);
        v8::Local<v8::ArrayBuffer> ab;

        /* after memory.grow the old buffer is detached: ask each time */
        ab = inst->memory.Get(inst->engine->isolate)->Buffer();
        inst->mem_base = (uint8_t *) ab->Data();
        inst->mem_size = ab->ByteLength();
        inst->mem_epoch = inst->engine->epoch;
    }
    *base = inst->mem_base;
    *size = inst->mem_size;
    return PW_OK;
}

static uint64_t
pw__v8_call_generation(pw_einstance_t *inst)
{
    inst->watched.store(1, std::memory_order_relaxed);
    return inst->next_gen.load();
}

static void
pw__v8_interrupt(pw_einstance_t *inst, uint64_t generation)
{
    uint64_t expected;

    expected = generation;
    if (generation == 0 || (generation & PW__V8_CLAIMED)) {
        return;
    }
    if (inst->active.compare_exchange_strong(expected,
                                             generation | PW__V8_CLAIMED))
    {
        inst->engine->isolate->TerminateExecution();
        inst->term_done.store(1);
    }
}

extern "C" {

const pw_engine_vt_t pw_engine_v8 = {
    "v8",
    pw__v8_init,
    pw__v8_destroy,
    pw__v8_compile,
    pw__v8_module_free,
    pw__v8_instantiate,
    pw__v8_instance_free,
    pw__v8_lookup,
    pw__v8_call,
    pw__v8_memory,
    pw__v8_call_generation,
    pw__v8_interrupt,
    pw__v8_call_i32,
    nullptr,            /* seq_prepare, call_seq: the core links */
    nullptr,            /* a batch module instead */
};

}
