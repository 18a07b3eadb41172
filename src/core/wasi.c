/*
 * WASI preview1 for plugins, registered under wasi_snapshot_preview1 and
 * wasi_unstable. What has meaning in a proxy works (stdout/stderr to the
 * log, clocks, randomness, per-VM environment and arguments, proc_exit);
 * the rest answers the errno Envoy uses, so runtimes that probe them
 * (wasi-libc, Go's wasip1 runtime) start normally.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/hostcall.h"

#define PW__ESUCCESS 0
#define PW__EBADF 8
#define PW__EFAULT 21
#define PW__EINVAL 28
#define PW__ENOENT 44
#define PW__ENOSYS 52
#define PW__ENOTSUP 58
#define PW__ESPIPE 70
#define PW__ENOTCAPABLE 76

static int
pw__is_stdio(uint32_t fd)
{
    return fd <= 2;
}

/* Lay out argv-style string arrays: pointers then NUL-terminated bytes. */
static int
pw__wasi_strings(pw__hc_t *hc, char **v, size_t n, uint32_t ptrs,
    uint32_t buf)
{
    uint32_t off = 0;
    size_t i, len;
    uint8_t *p;

    for (i = 0; i < n; i++) {
        len = strlen(v[i]) + 1;
        if (pw__hc_put_u32(hc, ptrs + (uint32_t) (i * 4), buf + off) != PW_OK
            || pw__hc_span(hc, buf + off, (uint32_t) len, &p) != PW_OK)
        {
            return PW__EFAULT;
        }
        memcpy(p, v[i], len);
        off += (uint32_t) len;
    }
    return PW__ESUCCESS;
}

static int
pw__wasi_sizes(pw__hc_t *hc, char **v, size_t n, uint32_t count_out,
    uint32_t size_out)
{
    size_t i, size = 0;

    for (i = 0; i < n; i++) {
        size += strlen(v[i]) + 1;
    }
    if (pw__hc_put_u32(hc, count_out, (uint32_t) n) != PW_OK
        || pw__hc_put_u32(hc, size_out, (uint32_t) size) != PW_OK)
    {
        return PW__EFAULT;
    }
    return PW__ESUCCESS;
}

int
pw__wasi_args_get(pw__hc_t *hc, const pw_val_t *a)
{
    return pw__wasi_strings(hc, hc->vm->args, hc->vm->nargs, PW__U32(a[0]),
                            PW__U32(a[1]));
}

int
pw__wasi_args_sizes_get(pw__hc_t *hc, const pw_val_t *a)
{
    return pw__wasi_sizes(hc, hc->vm->args, hc->vm->nargs, PW__U32(a[0]),
                          PW__U32(a[1]));
}

int
pw__wasi_environ_get(pw__hc_t *hc, const pw_val_t *a)
{
    return pw__wasi_strings(hc, hc->vm->env, hc->vm->nenv, PW__U32(a[0]),
                            PW__U32(a[1]));
}

int
pw__wasi_environ_sizes_get(pw__hc_t *hc, const pw_val_t *a)
{
    return pw__wasi_sizes(hc, hc->vm->env, hc->vm->nenv, PW__U32(a[0]),
                          PW__U32(a[1]));
}

int
pw__wasi_clock_res_get(pw__hc_t *hc, const pw_val_t *a)
{
    if (PW__U32(a[0]) > 1) {
        return PW__ENOTSUP;
    }
    return pw__hc_put_u64(hc, PW__U32(a[1]), 1) == PW_OK ? PW__ESUCCESS
                                                         : PW__EFAULT;
}

int
pw__wasi_clock_time_get(pw__hc_t *hc, const pw_val_t *a)
{
    uint32_t id = PW__U32(a[0]);

    if (id > 1) {
        return PW__ENOTSUP;
    }
    return pw__hc_put_u64(hc, PW__U32(a[2]), pw__hc_clock(hc, id == 1))
           == PW_OK ? PW__ESUCCESS : PW__EFAULT;
}

int
pw__wasi_fd_write(pw__hc_t *hc, const pw_val_t *a)
{
    uint32_t fd = PW__U32(a[0]), iovs = PW__U32(a[1]), n = PW__U32(a[2]);
    uint32_t i, ptr, len;
    uint8_t *p, *iov;
    char *buf;
    size_t total = 0, cap, want;

    if (fd != 1 && fd != 2) {
        return PW__EBADF;
    }
    if ((uint64_t) n * 8 > UINT32_MAX
        || pw__hc_span(hc, iovs, n * 8, &iov) != PW_OK)
    {
        return PW__EFAULT;
    }
    /* gather first: the log callback gets one contiguous message */
    want = 0;
    for (i = 0; i < n; i++) {
        memcpy(&len, iov + i * 8 + 4, 4);
        want += len;
    }
    cap = want;
    if (cap > PW_MAX_LOG_BYTES) {
        cap = PW_MAX_LOG_BYTES;
    }
    buf = malloc(cap ? cap : 1);
    if (buf == NULL) {
        return PW__ENOSYS;
    }
    for (i = 0; i < n; i++) {
        memcpy(&ptr, iov + i * 8, 4);
        memcpy(&len, iov + i * 8 + 4, 4);
        if (pw__hc_span(hc, ptr, len, &p) != PW_OK) {
            free(buf);
            return PW__EFAULT;
        }
        if (total < cap) {
            size_t take = len < cap - total ? len : cap - total;
            memcpy(buf + total, p, take);
            total += take;
        }
    }
    /* report all bytes as written, even past the log cap */
    if (pw__hc_put_u32(hc, PW__U32(a[3]), (uint32_t) want) != PW_OK) {
        free(buf);
        return PW__EFAULT;
    }
    if (total && buf[total - 1] == '\n') {
        total--;
    }
    if (total && hc->vm->host && hc->vm->host->log) {
        hc->vm->host->log(&hc->c, fd == 1 ? PW_LOG_INFO : PW_LOG_ERROR,
                          (pw_str_t){ buf, total });
    }
    free(buf);
    return PW__ESUCCESS;
}

int
pw__wasi_fd_close(pw__hc_t *hc, const pw_val_t *a)
{
    return pw__is_stdio(PW__U32(a[0])) ? PW__ESUCCESS : PW__EBADF;
}

/* fd_seek and fd_tell: stdio cannot seek */
int
pw__wasi_fd_noseek(pw__hc_t *hc, const pw_val_t *a)
{
    return pw__is_stdio(PW__U32(a[0])) ? PW__ESPIPE : PW__EBADF;
}

int
pw__wasi_fd_fdstat_get(pw__hc_t *hc, const pw_val_t *a)
{
    uint8_t st[24], *p;

    if (!pw__is_stdio(PW__U32(a[0]))) {
        return PW__EBADF;
    }
    if (pw__hc_span(hc, PW__U32(a[1]), sizeof(st), &p) != PW_OK) {
        return PW__EFAULT;
    }
    memset(st, 0, sizeof(st));
    st[0] = 2;                       /* filetype: character device */
    if (PW__U32(a[0]) != 0) {
        st[2] = 1;                   /* fdflags: append */
        st[8] = 1 << 6;              /* rights: fd_write */
    } else {
        st[8] = 1 << 1;              /* rights: fd_read */
    }
    memcpy(p, st, sizeof(st));
    return PW__ESUCCESS;
}

int
pw__wasi_fd_badf(pw__hc_t *hc, const pw_val_t *a)
{
    return PW__EBADF;
}

int
pw__wasi_nosys(pw__hc_t *hc, const pw_val_t *a)
{
    return PW__ENOSYS;
}

int
pw__wasi_notcapable(pw__hc_t *hc, const pw_val_t *a)
{
    return PW__ENOTCAPABLE;
}

int
pw__wasi_path_open(pw__hc_t *hc, const pw_val_t *a)
{
    return PW__ENOENT;
}

int
pw__wasi_poll_oneoff(pw__hc_t *hc, const pw_val_t *a)
{
    return pw__hc_put_u32(hc, PW__U32(a[3]), 0) == PW_OK ? PW__ESUCCESS
                                                         : PW__EFAULT;
}

int
pw__wasi_proc_exit(pw__hc_t *hc, const pw_val_t *a)
{
    hc->vm->exited = 1;
    hc->vm->exit_code = a[0].of.i32;
    hc->trap = a[0].of.i32 == 0 ? "proc_exit(0)" : "proc_exit with a "
               "non-zero code";
    return PW__HC_TRAP;
}

int
pw__wasi_sched_yield(pw__hc_t *hc, const pw_val_t *a)
{
    return PW__ESUCCESS;
}

int
pw__wasi_random_get(pw__hc_t *hc, const pw_val_t *a)
{
    uint32_t len = PW__U32(a[1]);
    uint8_t *p, *tmp;
    size_t off;
    ssize_t got;
    int rc;

    if (len > PW_MAX_RANDOM_BYTES) {
        return PW__EINVAL;
    }
    if (pw__hc_span(hc, PW__U32(a[0]), len, &p) != PW_OK) {
        return PW__EFAULT;
    }
    if (len == 0) {
        return PW__ESUCCESS;
    }
    tmp = malloc(len);
    if (tmp == NULL) {
        return PW__ENOSYS;
    }
    if (hc->vm->host && hc->vm->host->random) {
        rc = hc->vm->host->random(&hc->c, tmp, len);
    } else {
        rc = PW_OK;
        for (off = 0; off < len; off += (size_t) got) {
            got = getrandom(tmp + off, len - off, 0);
            if (got <= 0) {
                rc = PW_EIO;
                break;
            }
        }
    }
    if (rc == PW_OK) {
        memcpy(p, tmp, len);
    }
    free(tmp);
    return rc == PW_OK ? PW__ESUCCESS : PW__ENOSYS;
}
