/*
 * The call watchdog: interrupts a guest call that runs longer than
 * max_call_ms. Arming costs two atomic stores on the call path; a thread
 * polls at a quarter of the limit and interrupts through the engine with
 * the call's generation, so a late interrupt never kills the next call.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "core/core.h"

typedef struct {
    pw_vm_t *vm;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    _Atomic uint64_t start_ms;    /* 0: no call running */
    _Atomic uint64_t generation;
    _Atomic(pw_einstance_t *) inst; /* the call's: the plugin, the batch */
} pw__watchdog_t;

static uint64_t
pw__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static void *
pw__watchdog_run(void *arg)
{
    pw__watchdog_t *w = arg;
    pw_vm_t *vm = w->vm;
    struct timespec until;
    pw_einstance_t *inst;
    uint64_t period, start, gen, now;

    period = vm->max_call_ms / 4;
    if (period == 0) {
        period = 1;
    }

    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += (time_t) (period / 1000);
        until.tv_nsec += (long) (period % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&w->cv, &w->mu, &until);
        if (w->stop) {
            break;
        }
        gen = atomic_load(&w->generation);
        inst = atomic_load(&w->inst);
        start = atomic_load(&w->start_ms);
        now = pw__now_ms();
        /* start is now|1: up to a millisecond ahead of now */
        if (start && now >= start && now - start >= vm->max_call_ms) {
            vm->vt->interrupt(inst, gen);
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int
pw__watchdog_start(pw_vm_t *vm)
{
    sigset_t all, old;
    pw__watchdog_t *w;
    int rc;

    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return PW_ENOMEM;
    }
    w->vm = vm;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);

    /* signals stay on the proxy's thread */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&w->thread, NULL, pw__watchdog_run, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w);
        return PW_EENGINE;
    }
    vm->watchdog = w;
    return PW_OK;
}

void
pw__watchdog_stop(pw_vm_t *vm)
{
    pw__watchdog_t *w = vm->watchdog;

    if (w == NULL) {
        return;
    }
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
    vm->watchdog = NULL;
}

void
pw__watchdog_arm(pw_vm_t *vm, pw_einstance_t *inst)
{
    pw__watchdog_t *w = vm->watchdog;

    atomic_store(&w->inst, inst);
    atomic_store(&w->generation, vm->vt->call_generation(inst));
    atomic_store(&w->start_ms, pw__now_ms() | 1);
}

void
pw__watchdog_disarm(pw_vm_t *vm)
{
    pw__watchdog_t *w = vm->watchdog;

    atomic_store(&w->start_ms, 0);
}
